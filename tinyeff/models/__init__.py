"""Efficient model families: depthwise-separable CNNs and PRADO-style projection networks."""

from tinyeff.models.build import build, dscnn_spec, projection_spec
from tinyeff.models.projection_features import ProjectionConfig, project
from tinyeff.models.spec import KINDS, ModelSpec

__all__ = ["build", "dscnn_spec", "projection_spec", "ProjectionConfig", "project", "KINDS", "ModelSpec"]
