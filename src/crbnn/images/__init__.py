"""Stage ``images``: numerical phantoms and parameter maps of images (``crbnn infer`` is :mod:`crbnn.cli`).

* :mod:`crbnn.images.phantom`: vial and brain-like phantoms with known ground truth
* :mod:`crbnn.images.maps`: network and NLLS maps, sqrt(CRB) at the estimate, region statistics
* ``crbnn infer`` (the command line) lives in :mod:`crbnn.cli`; it calls these maps
"""
