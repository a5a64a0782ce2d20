//! numpy arguments as the slices the engine takes: checked (dtype kind, shape, range) with
//! errors that name the argument, and converted only when their dtype or layout differs from
//! what the engine reads, so a C-contiguous `uint32` / `float32` array is borrowed, not copied.

use crate::errors::InputError;
use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

/// An argument as a C-contiguous numpy array of `dtype` with `ndim` dimensions.
fn contiguous<'py>(
    py: Python<'py>,
    name: &str,
    obj: &Bound<'py, PyAny>,
    dtype: &str,
    kinds: &str,
    ndim: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let np = py.import("numpy")?;
    let arr = np.call_method1("asarray", (obj,))?;
    let kind: String = arr.getattr("dtype")?.getattr("kind")?.extract()?;
    if !kinds.contains(kind.as_str()) {
        let have: String = arr.getattr("dtype")?.str()?.extract()?;
        return Err(InputError::new_err(format!(
            "{name} must hold {}, not {have}",
            if kinds == "iu" { "integers" } else { "numbers" }
        )));
    }
    let dims: usize = arr.getattr("ndim")?.extract()?;
    if dims != ndim {
        let shape = arr.getattr("shape")?.str()?.to_string();
        return Err(InputError::new_err(format!(
            "{name} must have {ndim} dimension{}, not shape {shape}",
            if ndim == 1 { "" } else { "s" }
        )));
    }
    np.call_method1("ascontiguousarray", (arr, dtype))
}

/// A `uint32` array from any integer array whose values are in 0..2³²; an error names the first
/// value out of range.
pub fn u32s<'py>(
    py: Python<'py>,
    name: &str,
    obj: &Bound<'py, PyAny>,
    ndim: usize,
) -> PyResult<PyReadonlyArrayDyn<'py, u32>> {
    let np = py.import("numpy")?;
    let arr = np.call_method1("asarray", (obj,))?;
    let is_u32: bool = arr
        .getattr("dtype")?
        .eq(np.getattr("dtype")?.call1(("uint32",))?)?;
    if !is_u32 && arr.getattr("size")?.extract::<usize>()? > 0 {
        let kind: String = arr.getattr("dtype")?.getattr("kind")?.extract()?;
        if kind == "i" || kind == "u" {
            let bad = arr
                .call_method1("__lt__", (0,))?
                .call_method1("__or__", (arr.call_method1("__gt__", (u32::MAX,))?,))?;
            if bad.call_method0("any")?.is_truthy()? {
                let flat = bad.call_method0("ravel")?;
                let i: usize = np.call_method1("argmax", (flat,))?.extract()?;
                let v = arr.call_method0("ravel")?.get_item(i)?;
                return Err(InputError::new_err(format!(
                    "{name}[{i}] is {v}: values must be in 0..2^32"
                )));
            }
        }
    }
    let c = contiguous(py, name, &arr, "uint32", "iu", ndim)?;
    Ok(c.cast_into::<PyArrayDyn<u32>>()?.readonly())
}

/// A `float32` array from any real array (float64 is rounded, as the store keeps float16).
pub fn f32s<'py>(
    py: Python<'py>,
    name: &str,
    obj: &Bound<'py, PyAny>,
    ndim: usize,
) -> PyResult<PyReadonlyArrayDyn<'py, f32>> {
    let c = contiguous(py, name, obj, "float32", "fiu", ndim)?;
    Ok(c.cast_into::<PyArrayDyn<f32>>()?.readonly())
}

/// The slice of a contiguous array (always contiguous here: made by `ascontiguousarray`).
pub fn slice<'a, T: numpy::Element>(a: &'a PyReadonlyArrayDyn<'_, T>) -> &'a [T] {
    a.as_slice().unwrap_or(&[])
}

/// The shape of an array argument.
pub fn shape<T: numpy::Element>(a: &PyReadonlyArrayDyn<'_, T>) -> Vec<usize> {
    a.shape().to_vec()
}
