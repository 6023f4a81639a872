"""The ``rfm`` stage: per-customer RFM rows (:mod:`models.rfm_stage`)."""

from models.stages.base import Stage, stage_entry

__all__ = ["RFMStage"]


class RFMStage(Stage):
    """Per-customer RFM rows, written by the tasks; later stages get its manifest's
    figures (customers, purchase dates, line accounting), never its rows."""

    name = "rfm"
    runner = "models.rfm_stage:run_rfm_stage"
    needs = ("inputs", "schema")
    provides = ("rfm_details", "rfm_lines")

    def compute(self, run):
        from models.rfm_stage import run_rfm_stage

        manifest = run_rfm_stage(
            run.inputs,
            run.uri("rfm"),
            schema=run.schema,
            as_of=run.as_of,
            period=run.period,
            **run.jobs(),
        )
        self._provide(run, manifest)
        return [stage_entry("rfm", run.uri("rfm"), manifest)]

    def load(self, run, entries):
        from hdfs_io import read_manifest

        self._provide(run, read_manifest(run.fs, run.paths["rfm"]))

    @staticmethod
    def _provide(run, manifest):
        run.results["rfm_details"] = manifest["details"]
        run.results["rfm_lines"] = manifest["lines"]


def customers(run):
    """How many customers the RFM stage published."""
    return run.results["rfm_details"].get("customers", 0)


def no_customer_reason(run):
    """Why a stage that needs customers is skipped: the RFM run accepted no line."""
    if customers(run):
        return None
    lines = run.results.get("rfm_lines") or {}
    reason = "no accepted customer in the input"
    if lines:
        reason += (
            f" (lines read={lines['read']}, rejected by reason: {lines['rejected_by_reason']})"
        )
    return reason
