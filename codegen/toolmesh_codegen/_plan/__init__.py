"""The parallelizer's passes, one module each; :mod:`toolmesh_codegen.parallelize` is
the entry that runs them in order.

``normalize`` (awaits into statements of their own) → ``rename`` (reused names apart)
→ ``blocks`` (each block into scheduler nodes, with ``loops`` splitting ``for`` loops
into stages) → ``schedule`` (nodes into rounds, tasks and inline statements) →
``layout`` (the output's line shape). ``build`` makes the AST they share, ``nodes`` is
the scheduler's vocabulary, ``facts`` what the serial program says about itself.
"""
