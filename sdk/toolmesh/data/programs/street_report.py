"""A DiCE-C-shaped program over a street frame: detect, then fan out per detection.

The batch runner calls ``solve(image)`` with a PIL image, once per task. Calls
that do not depend on each other are awaited together, as DiCE-C's rewritten
programs do: both detections at once, then every vehicle's follow-ups at once.
"""

import asyncio
from typing import Any

from PIL import Image

import toolmesh


async def describe_vehicle(image: Image.Image, vehicle: dict[str, Any]) -> dict[str, Any]:
    x1, y1, x2, y2 = vehicle["box"]
    patch = image.crop((int(x1), int(y1), max(int(x2), int(x1) + 1), max(int(y2), int(y1) + 1)))
    thumbnail, grey = await asyncio.gather(
        toolmesh.call("resize", image=patch, width=64, height=64),
        toolmesh.call("greyscale", image=patch),
    )
    brightness = sum(grey.getdata()) / max(1, grey.width * grey.height)
    return {
        "label": vehicle["label"],
        "score": round(vehicle["score"], 3),
        "size": [patch.width, patch.height],
        "thumbnail": list(thumbnail.size),
        "brightness": round(brightness, 1),
    }


async def solve(image: Image.Image) -> dict[str, Any]:
    people, vehicles = await asyncio.gather(
        toolmesh.call("find", image=image, object_name="person"),
        toolmesh.call("find", image=image, object_name="vehicle"),
    )
    details = await asyncio.gather(*(describe_vehicle(image, v) for v in vehicles))
    return {"people": len(people), "vehicles": list(details)}
