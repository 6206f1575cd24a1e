"""``gcnseg serve``: a local page to look at a trained model's predictions.

``segmenter.py`` is what the page does, with no web code: load the chosen models once,
segment an image (optionally flip / multi-scale), blend the prediction over it, and
describe it (legend, class shares). ``page.py`` lays it out with Gradio
(``pip install 'gcnseg[serve]'``); ``cli.py`` is the command. Nothing on the page is
fetched from outside the machine: Gradio's own fonts and scripts are served locally and
its telemetry is off.
"""
