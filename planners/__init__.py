"""Problem-specific planners; importing this package registers every kind and solver."""

from . import microservice as microservice
from . import pipeline as pipeline
