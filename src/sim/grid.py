"""The one lat/lon <-> row/col transform of the project.

Every array of the landscape is indexed ``[row, col]`` (or ``[faction, row, col]``) with
**row 0 = north** and col 0 = west.  Cells are squares of ``res`` degrees; a cell's
coordinates are those of its centre.  Nothing else in the package converts between
geographic coordinates and array indices: use :class:`GridSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

EARTH_RADIUS_KM = 6371.0088
KM_PER_DEG = np.pi * EARTH_RADIUS_KM / 180.0  # ~111.2 km per degree of latitude


@dataclass(frozen=True)
class GridSpec:
    """A regular lat/lon grid over a bounding box.

    ``lon_min``/``lat_max`` is the north-west corner of cell (0, 0).
    """

    lon_min: float
    lon_max: float
    lat_min: float
    lat_max: float
    res: float

    def __post_init__(self) -> None:
        if not (self.res > 0):
            raise ValueError(f"grid resolution must be > 0, got {self.res}")
        if self.lon_max <= self.lon_min or self.lat_max <= self.lat_min:
            raise ValueError("grid bounding box is empty")

    @cached_property
    def n_rows(self) -> int:
        return int(round((self.lat_max - self.lat_min) / self.res))

    @cached_property
    def n_cols(self) -> int:
        return int(round((self.lon_max - self.lon_min) / self.res))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_rows, self.n_cols)

    @property
    def n_cells(self) -> int:
        return self.n_rows * self.n_cols

    # --- the transform -------------------------------------------------------------
    def rowcol(self, lat, lon):
        """Cell indices (row, col) of points; arrays in, int arrays out.

        Points outside the box get indices outside ``[0, n)``; use :meth:`contains`.
        """
        lat = np.asarray(lat, dtype=float)
        lon = np.asarray(lon, dtype=float)
        row = np.floor((self.lat_max - lat) / self.res + 1e-9).astype(np.int64)
        col = np.floor((lon - self.lon_min) / self.res + 1e-9).astype(np.int64)
        return row, col

    def latlon(self, row, col):
        """Centre (lat, lon) of cells (row, col)."""
        row = np.asarray(row, dtype=float)
        col = np.asarray(col, dtype=float)
        return self.lat_max - (row + 0.5) * self.res, self.lon_min + (col + 0.5) * self.res

    def contains(self, row, col):
        row = np.asarray(row)
        col = np.asarray(col)
        return (row >= 0) & (row < self.n_rows) & (col >= 0) & (col < self.n_cols)

    # --- derived axes ----------------------------------------------------------------
    @cached_property
    def lats(self) -> np.ndarray:
        """Cell-centre latitudes, north to south (length n_rows)."""
        return self.latlon(np.arange(self.n_rows), 0)[0]

    @cached_property
    def lons(self) -> np.ndarray:
        """Cell-centre longitudes, west to east (length n_cols)."""
        return self.latlon(0, np.arange(self.n_cols))[1]

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(left, right, bottom, top) for ``imshow(..., origin="upper")``."""
        return (self.lon_min, self.lon_min + self.n_cols * self.res,
                self.lat_max - self.n_rows * self.res, self.lat_max)

    @cached_property
    def cell_km(self) -> float:
        """North-south size of a cell in km (the east-west size shrinks with cos(lat))."""
        return self.res * KM_PER_DEG

    @cached_property
    def cell_area_km2(self) -> np.ndarray:
        """Area of each cell in km^2, shape (n_rows, n_cols)."""
        widths = self.cell_km * np.cos(np.deg2rad(self.lats))
        return np.repeat((widths * self.cell_km)[:, None], self.n_cols, axis=1)

    def km_to_cells(self, km: float) -> float:
        return km / self.cell_km


def haversine_km(lat1, lon1, lat2, lon2):
    """Great-circle distance in km (vectorised)."""
    p1, p2 = np.deg2rad(lat1), np.deg2rad(lat2)
    dphi = p2 - p1
    dl = np.deg2rad(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))
