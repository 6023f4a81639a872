"""The ``rfm_segments`` stage: RFM scores, value tiers, named segments
(:mod:`models.segments_stage`)."""

from models.stages.base import Stage, stage_entry

__all__ = ["RFMSegmentsStage"]


class RFMSegmentsStage(Stage):
    """Scores every published RFM row on the tasks, from exact thresholds."""

    name = "rfm_segments"
    runner = "models.segments_stage:run_segments_stage"
    needs = ("rfm_details",)

    def compute(self, run):
        from models.segments_stage import run_segments_stage

        jobs = run.jobs()
        _summary, manifest = run_segments_stage(run.uri("rfm"), run.uri(self.name), **jobs)
        return [stage_entry(self.name, run.uri(self.name), manifest)]
