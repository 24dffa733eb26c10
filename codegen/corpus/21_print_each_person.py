"""List every person with their score and the size of their grey patch."""

import toolmesh


async def solve(image):
    people = await toolmesh.call("find", image=image, object_name="person")
    print(f"{len(people)} people")
    for number, person in enumerate(people, start=1):
        grey = await toolmesh.call("greyscale", image=image.crop(person["box"]))
        print(f"person {number}: score {person['score']:.2f}, patch {grey.size}")
    return len(people)
