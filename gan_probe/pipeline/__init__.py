"""`gan-probe pipeline`: every stage of the evaluation, cached and resumable, from a TOML config."""
from .config import PipelineConfig, default_config, load_config
from .run import PipelineSummary, run_pipeline
from .stages import StageResult, StageRunner

__all__ = ["PipelineConfig", "default_config", "load_config", "PipelineSummary", "run_pipeline", "StageResult",
           "StageRunner"]
