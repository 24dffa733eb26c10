"""Are there more people than vehicles in the street?"""

import toolmesh


async def solve(image):
    people = await toolmesh.call("find", image=image, object_name="people")
    vehicles = await toolmesh.call("find", image=image, object_name="vehicle")
    if len(people) > len(vehicles):
        answer = "more people"
    elif len(people) < len(vehicles):
        answer = "more vehicles"
    else:
        answer = "as many people as vehicles"
    return f"{answer} ({len(people)} people, {len(vehicles)} vehicles)"
