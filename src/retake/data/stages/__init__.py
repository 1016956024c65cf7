"""The stages of the curation pipeline, one per module; each is `(sample, meta) -> (sample, meta, error)`."""

from retake.data.stages.basic_filter import BasicFilter
from retake.data.stages.clips import SplitClips
from retake.data.stages.decode import Decode
from retake.data.stages.instruct import Instruct
from retake.data.stages.load_clips import LoadClips
from retake.data.stages.motion import MotionScore
from retake.data.stages.pairing import PairClips
from retake.data.stages.probe import Probe
from retake.data.stages.scene_split import SceneSplit
from retake.data.stages.trivial_filter import TrivialFilter
from retake.data.stages.verb_rewrite import VerbRewrite
from retake.data.stages.write import WriteShard

__all__ = [
    "BasicFilter",
    "Decode",
    "Instruct",
    "LoadClips",
    "MotionScore",
    "PairClips",
    "Probe",
    "SceneSplit",
    "SplitClips",
    "TrivialFilter",
    "VerbRewrite",
    "WriteShard",
]
