"""Export: trained models as ONNX files (DeepFaceLab's .dfm interface, or facelab's own), and the one
loader that gives merge and live a model from a model folder or such a file."""
