"""XSeg: few-shot trainable face segmentation.

Labels are include/exclude polygons stored in each face's FaceRecord (``xseg_polygons``); a trained
model writes its prediction into the record as ``xseg_mask`` (a base64 PNG over the stored face).
Modules: ``options`` (XSegOptions), ``net`` (the U-Net), ``labels`` (polygons, masks, label files),
``augment`` (training samples), ``train`` (the resumable loop), ``infer`` (load a model, predict),
``apply`` (folder operations).
"""
