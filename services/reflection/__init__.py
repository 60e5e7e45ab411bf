"""Mesh-wide server reflection for the edge, so `grpcurl` through Envoy sees every service.

Each replica reflects only its own service; Envoy routes reflection requests here instead,
where every contract service of the descriptor set is known.
"""
