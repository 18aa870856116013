"""Training-data generation (paper Sec. 3.2).

Per clip, a step description from automatic sources (:mod:`.sources`: object tags,
narration, metadata, captions; aggregated by :mod:`.aggregate`); pairs of similar clips
of a keystep (:mod:`.pairs`); QA comparing them (:mod:`.qa`); QA filtering
(:mod:`.filtering`); interleaved and single-video data (:mod:`.interleaved`); a report
(:mod:`.stats`). :mod:`.stages` wires them into a sharded, resumable pipeline
(:mod:`.runner`), which :mod:`.pipeline` orders and ``stepdiff datagen`` (:mod:`.cli`) runs.
"""
