//! Derived data the features built on the store keep in memory (decoder rows, HNSW indexes, the
//! vocabulary matrix, graphs prepared for search), by type and id. The store core holds one
//! [`Derived`] and never names what is in it: each feature module stores and finds its own type.

use crate::{Error, Result};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Entry = Arc<dyn Any + Send + Sync>;

/// A map from (type, id) to a shared value of that type.
#[derive(Default)]
pub(crate) struct Derived(Mutex<HashMap<(TypeId, u32), Entry>>);

impl Derived {
    /// The `T` kept under `id`, if any.
    pub(crate) fn get<T: Any + Send + Sync>(&self, id: u32) -> Result<Option<Arc<T>>> {
        let map = self.0.lock().map_err(|_| Error::Poisoned)?;
        Ok(map
            .get(&(TypeId::of::<T>(), id))
            .and_then(|e| e.clone().downcast::<T>().ok()))
    }

    /// Keeps `value` under `id` (replacing an older one).
    pub(crate) fn insert<T: Any + Send + Sync>(&self, id: u32, value: Arc<T>) -> Result<()> {
        let mut map = self.0.lock().map_err(|_| Error::Poisoned)?;
        map.insert((TypeId::of::<T>(), id), value);
        Ok(())
    }

    /// The `T` kept under `id`, made by `make` and kept first if there is none (atomically: two
    /// callers never keep two).
    pub(crate) fn get_or_insert<T: Any + Send + Sync>(
        &self,
        id: u32,
        make: impl FnOnce() -> T,
    ) -> Result<Arc<T>> {
        let mut map = self.0.lock().map_err(|_| Error::Poisoned)?;
        let entry = map
            .entry((TypeId::of::<T>(), id))
            .or_insert_with(|| Arc::new(make()));
        entry
            .clone()
            .downcast::<T>()
            .map_err(|_| Error::Corrupt("derived data of the wrong type".to_string()))
    }

    /// Forgets the `T` under `id`.
    pub(crate) fn remove<T: Any + Send + Sync>(&self, id: u32) -> Result<()> {
        let mut map = self.0.lock().map_err(|_| Error::Poisoned)?;
        map.remove(&(TypeId::of::<T>(), id));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_kept_by_type_and_id() {
        let d = Derived::default();
        d.insert(1, Arc::new(5u32)).unwrap();
        d.insert(1, Arc::new(String::from("x"))).unwrap();
        assert_eq!(d.get::<u32>(1).unwrap().as_deref(), Some(&5));
        assert_eq!(
            d.get::<String>(1).unwrap().as_deref().map(String::as_str),
            Some("x")
        );
        assert!(d.get::<u32>(2).unwrap().is_none());
        d.remove::<u32>(1).unwrap();
        assert!(d.get::<u32>(1).unwrap().is_none());
        assert!(d.get::<String>(1).unwrap().is_some());
    }
}
