"""The merge tuner's backend: a dst frame merged with any options, as `facelab merge` would write it.

- ``index``: the frames, their dst faces and the faces' motions, and which frames the batch merge puts
  through the model together (``plan``), reread when the folders change;
- ``predictor``: the workspace's model, loaded once (again when training saves new weights), and its
  predictions cached per frame (LRU, bounded memory), computed batch by batch as the merge does;
- ``warmup``: a background thread predicting the batches not cached yet, nearest the user's frame first,
  while the cache has room; ``gate``: one model call at a time, a render request's before the warm-up's;
- ``render``: compositing, watermark and encoding only, with the merge's own functions;
- ``latest``: a newer request of the same page cancels the one in flight;
- ``sessions``: the workspace's merge session file (read, apply to frame/range/all, save atomically);
- ``schema``: the options' JSON schema for the page's controls;
- ``service``: ``Tuner``, one per studio app, tying them together.
"""
