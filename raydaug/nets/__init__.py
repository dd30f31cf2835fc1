"""Network families of the four players; ``build_*`` are the only constructors the rest uses."""
from raydaug.nets.classifier import build_classifier
from raydaug.nets.discriminators import ClassDiscriminator, PairDiscriminator, build_discriminators
from raydaug.nets.generator import Generator, build_generator

__all__ = ["build_classifier", "build_discriminators", "build_generator", "Generator",
           "ClassDiscriminator", "PairDiscriminator"]
