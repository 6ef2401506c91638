"""Region statistics of the maps of one image as CSV and JSON (rule summarize_image_regions).

Phantoms: per labelled region (vials, water; WM, GM, CSF) mean, SD, error against the truth and
error / standard error per estimator.  In vivo: the tissue regions of ``images.tissue`` (a
classification of the coefficient image alone, crbnn.images.regions.tissue_regions; no estimator's
map selects them) and the configured boxes, with mean, SD and the paired difference to NLLS with its
standard error (negative m0s counted), the block sums of the tissue regions for the in vivo claim's
bootstrap (crbnn.evaluate.literature.region_blocks), plus whole-mask percentiles.
"""

import json
from pathlib import Path

from crbnn.common.io import atomic_write, read_nifti, write_json
from crbnn.common.logs import setup_logging
from crbnn.evaluate.literature import region_blocks
from crbnn.images.maps import read_coefficient_image, read_maps
from crbnn.images.regions import box_regions, percentile_stats, reference_differences, region_stats, tissue_regions

def main(snakemake):
    log = setup_logging(snakemake.log)
    image = read_coefficient_image(snakemake.input.coefficients, snakemake.input.mask)
    folder = Path(snakemake.input.maps[0]).parent.parent
    estimated = list(snakemake.config["model"]["estimated"])
    maps = {e: read_maps(folder / e, [*estimated, "residual"]) for e in snakemake.params.estimators}
    truth = None
    if "labels" in snakemake.input.keys():
        labels = read_nifti(snakemake.input.labels)[0]
        names = json.loads(Path(snakemake.input.regions).read_text())["regions"]
        regions = {name: labels == int(k) for k, name in names.items()}
        truth = {Path(p).name.removesuffix(".nii.gz"): read_nifti(p)[0] for p in snakemake.input.truth}
    differences = []
    tissue_sizes = {}
    blocks = None
    if truth is None:
        regions = box_regions(image.shape, snakemake.params.boxes, image.mask)
        if "nlls" in maps:
            spec = snakemake.params.tissue
            tissue = tissue_regions(image.coefficients, image.mask, **spec["regions"])
            tissue_sizes = {k: int(v.sum()) for k, v in tissue.items()}
            log.info("tissue regions (coefficient image, Gaussian mixture): %s voxels", tissue_sizes)
            blocks = region_blocks(maps, tissue, spec["block"], estimated)
            regions = {**tissue, **{f"box_{k}": v for k, v in regions.items()}}
            differences = reference_differences(maps, {**regions, "mask": image.mask}, parameters=estimated)
    rows = region_stats(maps, regions, truth, parameters=estimated)
    rows += percentile_stats(maps, image.mask, snakemake.params.percentiles, parameters=[*estimated, "residual"])
    import pandas as pd

    df = pd.DataFrame(rows)
    with atomic_write(snakemake.output.csv) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    out = {"image": snakemake.wildcards.image, "rows": json.loads(df.to_json(orient="records"))}
    if differences:
        out["tissue_regions"] = {"rule": snakemake.params.tissue, "n_voxels": tissue_sizes}
        out["tissue_blocks"] = blocks
        out["differences"] = json.loads(pd.DataFrame(differences).to_json(orient="records"))
    write_json(snakemake.output.json, out)
    log.info("%s: %d rows of region statistics", snakemake.wildcards.image, len(df))


if "snakemake" in globals():
    main(snakemake)  # noqa: F821
