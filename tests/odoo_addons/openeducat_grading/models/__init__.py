from . import gradebook
