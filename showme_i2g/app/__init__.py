"""The web app's own code: what ``app.py`` needs that is neither page layout nor model logic.

This is the app's package, not the library's: the library (everything else in ``showme_i2g``) never imports it, and
the CLI, ``train/`` and ``eval/`` have no use for it. Like the library, it never imports gradio (the page is built in
``app.py`` alone), and none of its modules imports torch at import time, so ``python app.py --help`` stays fast and
every part here is tested without a browser.

* :mod:`.presets`: which presets' weights are on this machine (a look-up in the Hugging Face cache, never a
  request), the presets the app starts with, the dropdown labels and the banner.
* :mod:`.downloads`: ``python app.py --download`` and the sentence a run gets for a preset whose weights are missing.
* :mod:`.models`: :class:`~.models.ModelCache`, the models shared between users (load once, one call at a time).
* :mod:`.runs`: ending runs early (Stop, a closed page, a cancelled request, a spent time budget) and a folder per
  run, pruned by age.
* :mod:`.hardware`: what this machine offers (sizes, steps, frames, each run's budget) and ZeroGPU durations.
* :mod:`.outputs`: the recipe tab's downloads (ZIP, HTML storyboard) and "Animate my recipe"'s (clips, the stitched
  captioned video).
* :mod:`.examples`: the photo tab's example photos, drawn here.
"""
