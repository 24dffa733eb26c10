"""Example programs for `toolmesh run` (each defines ``async def solve(image)``)."""
