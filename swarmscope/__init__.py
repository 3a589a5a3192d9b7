"""swarmscope: how traffic reaches a Docker Swarm service, and where it breaks."""

__version__ = "0.1.0"
