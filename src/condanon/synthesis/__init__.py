"""Synthetic faces: the prototype bank, geometry and warping, composition, and the verification loop."""

from .bank import PrototypeBank, default_bank
from .synthesizer import Synthesis, Synthesizer

__all__ = ["PrototypeBank", "Synthesis", "Synthesizer", "default_bank"]
