"""Which kinds of vehicle are there, how many of each, and how big is the largest?"""

import toolmesh


async def solve(image):
    vehicles = await toolmesh.call("find", image=image, object_name="vehicle")
    kinds = {}
    for vehicle in vehicles:
        kinds[vehicle["label"]] = kinds.get(vehicle["label"], 0) + 1
    if not vehicles:
        return {"kinds": kinds}
    largest = max(vehicles, key=lambda v: v["box"][2] - v["box"][0])
    patch = await toolmesh.call("greyscale", image=image.crop(largest["box"]))
    return {"kinds": kinds, "largest": largest["label"], "patch": list(patch.size)}
