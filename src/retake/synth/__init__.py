"""The paired edit data factory: (source, edited, instruction) triplets for supervised editing.

- `insvie` (DESIGN 1.2): curate sources -> edit the first frame at K strengths (image_editors) -> keep the
  best or none (selection) -> propagate the edit through the clip (propagate/) -> second filter (filters);
  still images become triplets along a synthetic camera path (stills).
- `icve-sft` (DESIGN 1.1): object masks (masks) -> inpainting (inpaint) -> remove / add / replace pairs,
  instruction and quality filters, re-balancing of edit types (sft).

Entry point: `retake.synth.runner.synthesize(input, out, config)`; configs in `retake.synth.recipes`. The
stages, dataset format, executors and VLM client are the curation pipeline's (retake.data).
"""
