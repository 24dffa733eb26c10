"""Which people are standing (box at least twice as tall as wide)? Give 16-pixel-wide
thumbnails' heights of those."""

import toolmesh


def is_tall(box):
    x1, y1, x2, y2 = box
    return (y2 - y1) >= 2 * (x2 - x1)


def thumbnail_height(box, width):
    x1, y1, x2, y2 = box
    return max(1, round(width * (y2 - y1) / (x2 - x1)))


async def solve(image):
    people = await toolmesh.call("find", image=image, object_name="person")
    heights = []
    for person in people:
        if is_tall(person["box"]):
            thumb = await toolmesh.call(
                "resize",
                image=image.crop(person["box"]),
                width=16,
                height=thumbnail_height(person["box"], 16),
            )
            heights.append(thumb.size[1])
    return {"standing": len(heights), "heights": heights}
