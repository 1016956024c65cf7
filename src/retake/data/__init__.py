"""Training data: the unpaired-clip curation pipeline (stages, runner, executors, dataset format) and the
OpenAI-compatible VLM client it shares with evaluation.

Entry point: `retake.data.runner.curate(input, out, config)`; configs in `retake.data.recipes`.
"""
