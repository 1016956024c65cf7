"""The factory's stages, grouped by pipeline step; each is `(sample, meta) -> (sample, meta, error)`.

source (read, source_filter), first_frame (instructions, edit, select), propagate (propagate,
quality_filter), sft (masks, mask_filter, pairs, instruction_filter, pair_filter, judge), write.
"""
