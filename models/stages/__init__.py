"""The stages of ``crm-mr run``, in run order: the one registry.

:func:`models.pipeline.run_pipeline` runs them in this order, records them, resumes
them; :mod:`models.cli` builds each stage's options (its own command's and
``crm-mr run``'s) from them. A new stage is one module with a :class:`Stage` subclass
(see :mod:`models.stages.base`) and one line here.
"""

from models.stages.base import Option, RunContext, Stage, skipped_entry, stage_entry
from models.stages.baskets import BasketsStage
from models.stages.churn import ChurnStage
from models.stages.clv import CLVStage
from models.stages.data import DataStage
from models.stages.forecasts import ForecastsStage
from models.stages.rfm import RFMStage
from models.stages.rfm_segments import RFMSegmentsStage
from models.stages.sales import SalesStage
from models.stages.segments import SegmentsStage

__all__ = [
    "REGISTRY",
    "Option",
    "RunContext",
    "Stage",
    "by_name",
    "published",
    "skipped_entry",
    "stage_entry",
]

REGISTRY = (
    DataStage(),
    RFMStage(),
    RFMSegmentsStage(),
    BasketsStage(),
    SegmentsStage(),
    SalesStage(),
    ForecastsStage(),
    ChurnStage(),
    CLVStage(),
)


def by_name(name):
    """The registered stage called ``name`` (``KeyError`` naming the known ones)."""
    for stage in REGISTRY:
        if stage.name == name:
            return stage
    raise KeyError(f"stage={name!r} is not one of {[s.name for s in REGISTRY]}")


def published():
    """Every directory the stages publish, in run order (``data`` first)."""
    return tuple(name for stage in REGISTRY for name in stage.outputs())
