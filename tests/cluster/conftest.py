"""Tests on a throwaway 3-master Redis Cluster (tests/_servers/redis_cluster.py)."""

from __future__ import annotations

from tests._servers.redis_cluster import redis_cluster_fixture

__all__ = ["redis_cluster_fixture"]
