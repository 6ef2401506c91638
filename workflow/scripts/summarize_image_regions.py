"""Region statistics of the maps of one image as CSV and JSON (rule summarize_image_regions).

Phantoms: per labelled region (vials, water; WM, GM, CSF) mean, SD, error against the truth and
error / standard error per estimator.  In vivo: the configured boxes plus whole-mask percentiles.
"""

import json
from pathlib import Path

from crbnn.images import ESTIMATED, box_regions, percentile_stats, read_coefficient_image, read_maps, region_stats
from crbnn.io import atomic_write, read_nifti, write_json
from crbnn.logging_utils import setup_logging


def main(snakemake):
    log = setup_logging(snakemake.log)
    image = read_coefficient_image(snakemake.input.coefficients, snakemake.input.mask)
    folder = Path(snakemake.input.maps[0]).parent.parent
    maps = {e: read_maps(folder / e, [*ESTIMATED, "residual"]) for e in snakemake.params.estimators}
    truth = None
    if "labels" in snakemake.input.keys():
        labels = read_nifti(snakemake.input.labels)[0]
        names = json.loads(Path(snakemake.input.regions).read_text())["regions"]
        regions = {name: labels == int(k) for k, name in names.items()}
        truth = {Path(p).name.removesuffix(".nii.gz"): read_nifti(p)[0] for p in snakemake.input.truth}
    else:
        regions = box_regions(image.shape, snakemake.params.boxes, image.mask)
    rows = region_stats(maps, regions, truth)
    rows += percentile_stats(maps, image.mask, snakemake.params.percentiles, [*ESTIMATED, "residual"])
    import pandas as pd

    df = pd.DataFrame(rows)
    with atomic_write(snakemake.output.csv) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    write_json(snakemake.output.json, {"image": snakemake.wildcards.image, "rows": json.loads(df.to_json(orient="records"))})
    log.info("%s: %d rows of region statistics", snakemake.wildcards.image, len(df))


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
