"""Face analysis primitives: detection, 68-point landmarks, alignment, masks, pose, identity.

Each primitive is a small Protocol with named backends in a registry; the rest of facelab asks for a
backend by name (a value of a Literal in facelab.core.choices) and never imports a backend directly.
"""
