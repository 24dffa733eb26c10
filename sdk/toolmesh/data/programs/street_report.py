"""A DiCE-C-shaped program over a street frame: detect, then fan out per detection.

The batch runner calls ``solve(image)`` once per task. Calls that do not depend on
each other are awaited together, as DiCE-C's rewritten programs do: both detections
at once, then every vehicle's follow-ups at once. It is written to the codegen
contract (``codegen/README.md``), so it runs in-process (``--trusted``) and in the
sandbox alike.
"""

import asyncio

import toolmesh


def patch_box(box):
    x1, y1, x2, y2 = box
    return (int(x1), int(y1), max(int(x2), int(x1) + 1), max(int(y2), int(y1) + 1))


async def solve(image):
    people, vehicles = await asyncio.gather(
        toolmesh.call("find", image=image, object_name="person"),
        toolmesh.call("find", image=image, object_name="vehicle"),
    )
    patches = [image.crop(patch_box(vehicle["box"])) for vehicle in vehicles]
    looks = await asyncio.gather(
        *[
            asyncio.gather(
                toolmesh.call("resize", image=patch, width=64, height=64),
                toolmesh.call("greyscale", image=patch),
            )
            for patch in patches
        ]
    )
    details = []
    for vehicle, patch, look in zip(vehicles, patches, looks, strict=True):
        thumbnail, grey = look
        brightness = sum(grey.getdata()) / max(1, grey.width * grey.height)
        details.append(
            {
                "label": vehicle["label"],
                "score": round(vehicle["score"], 3),
                "size": [patch.width, patch.height],
                "thumbnail": list(thumbnail.size),
                "brightness": round(brightness, 1),
            }
        )
    return {"people": len(people), "vehicles": details}
