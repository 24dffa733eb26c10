"""The DiCE-C paper's query over an accident scene, for ``toolmesh run``.

"Report the colour and model of all the cars involved in the accident and check
if the cars are damaged or overturned": find the vehicles, then for each one ask
``simple_query`` (VQA) its colour and its make/model and ``verify_property``
(image-text matching) whether it is damaged and whether it is overturned. The
four questions about one vehicle do not depend on each other, nor do different
vehicles, so all of them are awaited together: the distributed shape the paper's
rewritten program has (GLIP → BLIP ×2, XVLM ×2 per car). Written to the codegen
contract (``codegen/README.md``), so it runs in-process (``--trusted``), in the
baseline and in the sandbox alike.
"""

import asyncio

import toolmesh


def patch_box(box):
    x1, y1, x2, y2 = box
    return (int(x1), int(y1), max(int(x2), int(x1) + 1), max(int(y2), int(y1) + 1))


async def solve(image):
    vehicles = await toolmesh.call("find", image=image, object_name="vehicle")
    patches = [image.crop(patch_box(vehicle["box"])) for vehicle in vehicles]
    answers = await asyncio.gather(
        *[
            asyncio.gather(
                toolmesh.call(
                    "simple_query", image=patch, question="what is the color of the car?"
                ),
                toolmesh.call(
                    "simple_query", image=patch, question="what is the make and model of the car?"
                ),
                toolmesh.call(
                    "verify_property", image=patch, object_name="car", property="damaged"
                ),
                toolmesh.call(
                    "verify_property", image=patch, object_name="car", property="overturned"
                ),
            )
            for patch in patches
        ]
    )
    cars = []
    for vehicle, answer in zip(vehicles, answers, strict=True):
        color, model, damaged, overturned = answer
        cars.append(
            {
                "label": vehicle["label"],
                "score": round(vehicle["score"], 3),
                "color": color,
                "model": model,
                "damaged": damaged["holds"],
                "overturned": overturned["holds"],
            }
        )
    return {"cars": cars}
