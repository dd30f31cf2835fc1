"""Network families of the four players; ``build_*`` are the only constructors the rest uses."""
from .classifier import build_classifier
from .discriminators import ClassDiscriminator, PairDiscriminator, build_discriminators
from .generator import Generator, build_generator

__all__ = ["build_classifier", "build_discriminators", "build_generator", "Generator",
           "ClassDiscriminator", "PairDiscriminator"]
