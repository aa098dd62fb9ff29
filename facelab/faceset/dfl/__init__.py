"""DeepFaceLab facesets read without running their pickles: aligned JPEG/PNG faces and ``faceset.pak``.

- ``pickle_data``: a pickle reader that builds plain data and numeric numpy arrays itself and refuses
  everything else (it never imports or calls anything named in the file).
- ``container``: where DFL keeps its metadata inside a face image (JPEG APP15, PNG ``fcWp`` chunk).
- ``pak``: the layout of DFL's packed faceset, ``faceset.pak``.
- ``convert``: a DFL metadata dict to facelab's FaceRecord (face types mapped, XSeg polygons and mask).
- ``rewarp``: an imported face re-warped to facelab's own crop of its face type (``--rewarp``).
- ``importer``: the whole import, resumable, one file at a time.
"""
