"""Count people and vehicles, and report the size of a grey copy."""

import toolmesh


async def solve(image):
    counts = {
        "people": len(await toolmesh.call("find", image=image, object_name="person")),
        "vehicles": len(await toolmesh.call("find", image=image, object_name="vehicle")),
    }
    return counts, (await toolmesh.call("greyscale", image=image)).size
