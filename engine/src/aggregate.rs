//! Incremental aggregation: the [`AggregateFunction`] accumulator trait (Flink's
//! `AggregateFunction`) and the built-ins count, sum, min, max, avg, plus collect
//! (keep all elements) and reduce adapters.
//!
//! Window operators keep one accumulator per key and pane, never a buffer of
//! records, unless the function itself is [`Collect`].

use std::marker::PhantomData;
use std::ops::Add;

use crate::state::codec::StateCodec;

/// An incremental aggregation: create an accumulator, add values, merge two
/// accumulators (panes, sessions), read the result.
///
/// ```
/// use engine::{AggregateFunction, Avg};
/// let avg = Avg::of(|x: &f64| *x);
/// let mut acc = avg.create();
/// avg.add(&mut acc, &2.0);
/// avg.add(&mut acc, &4.0);
/// assert_eq!(avg.result(&acc), 3.0);
/// ```
pub trait AggregateFunction<In>: Send + Sync + 'static {
    /// The accumulator kept in state.
    type Acc: Clone + Send + StateCodec + 'static;
    /// The result type.
    type Out: Send + 'static;
    /// A fresh accumulator.
    fn create(&self) -> Self::Acc;
    /// Adds one value.
    fn add(&self, acc: &mut Self::Acc, value: &In);
    /// Merges `other` into `acc`.
    fn merge(&self, acc: &mut Self::Acc, other: &Self::Acc);
    /// The result of an accumulator.
    fn result(&self, acc: &Self::Acc) -> Self::Out;
    /// Whether [`AggregateFunction::retract`] exactly undoes a merge. Sliding windows
    /// then keep one running accumulator per key (add the entering pane, retract the
    /// leaving one) instead of a per-key queue of panes.
    fn invertible(&self) -> bool {
        false
    }
    /// Removes `other` (previously merged) from `acc`; only called when
    /// [`AggregateFunction::invertible`] is true.
    fn retract(&self, _acc: &mut Self::Acc, _other: &Self::Acc) {}
}

/// Numbers the built-in sum/min/max work on.
pub trait Numeric:
    Copy + Default + PartialOrd + Add<Output = Self> + StateCodec + Send + Sync + 'static
{
    /// Whether addition is exact (integers), so a sum can be retracted without drift.
    const EXACT: bool;
    /// Conversion for averages.
    fn to_f64(self) -> f64;
    /// `self - other` (wrapping for integers); only used when `EXACT`.
    fn minus(self, other: Self) -> Self;
}
macro_rules! numeric_int {
    ($($t:ty),*) => {$(
        impl Numeric for $t {
            const EXACT: bool = true;
            #[inline]
            fn to_f64(self) -> f64 { self as f64 }
            #[inline]
            fn minus(self, other: Self) -> Self { self.wrapping_sub(other) }
        }
    )*};
}
macro_rules! numeric_float {
    ($($t:ty),*) => {$(
        impl Numeric for $t {
            const EXACT: bool = false;
            #[inline]
            fn to_f64(self) -> f64 { self as f64 }
            #[inline]
            fn minus(self, other: Self) -> Self { self - other }
        }
    )*};
}
numeric_int!(u8, u16, u32, u64, i8, i16, i32, i64, usize);
numeric_float!(f32, f64);

/// Counts records.
#[derive(Clone, Copy, Debug, Default)]
pub struct Count;

impl<In> AggregateFunction<In> for Count {
    type Acc = u64;
    type Out = u64;
    fn create(&self) -> u64 {
        0
    }
    #[inline]
    fn add(&self, acc: &mut u64, _: &In) {
        *acc += 1;
    }
    fn merge(&self, acc: &mut u64, other: &u64) {
        *acc += *other;
    }
    fn result(&self, acc: &u64) -> u64 {
        *acc
    }
    fn invertible(&self) -> bool {
        true
    }
    fn retract(&self, acc: &mut u64, other: &u64) {
        *acc -= *other;
    }
}

macro_rules! field_agg {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        pub struct $name<F, In, V> {
            f: F,
            _p: PhantomData<fn(&In) -> V>,
        }
        impl<F, In, V> $name<F, In, V>
        where
            F: Fn(&In) -> V + Send + Sync + 'static,
        {
            /// Aggregates the values `f` reads from each record.
            pub fn of(f: F) -> Self {
                $name { f, _p: PhantomData }
            }
        }
    };
}

field_agg!(
    /// Sums a numeric field.
    Sum
);
field_agg!(
    /// Minimum of a numeric field.
    Min
);
field_agg!(
    /// Maximum of a numeric field.
    Max
);
field_agg!(
    /// Average of a numeric field, as `f64`.
    Avg
);

impl<F, In: 'static, V: Numeric> AggregateFunction<In> for Sum<F, In, V>
where
    F: Fn(&In) -> V + Send + Sync + 'static,
{
    type Acc = V;
    type Out = V;
    fn create(&self) -> V {
        V::default()
    }
    #[inline]
    fn add(&self, acc: &mut V, value: &In) {
        *acc = *acc + (self.f)(value);
    }
    fn merge(&self, acc: &mut V, other: &V) {
        *acc = *acc + *other;
    }
    fn result(&self, acc: &V) -> V {
        *acc
    }
    /// Integer sums retract exactly; float sums would drift, so they do not.
    fn invertible(&self) -> bool {
        V::EXACT
    }
    fn retract(&self, acc: &mut V, other: &V) {
        *acc = acc.minus(*other);
    }
}

fn pick<V: Numeric>(acc: &mut Option<V>, v: V, keep_new: impl Fn(V, V) -> bool) {
    match acc {
        Some(cur) if !keep_new(v, *cur) => {}
        _ => *acc = Some(v),
    }
}

impl<F, In: 'static, V: Numeric> AggregateFunction<In> for Min<F, In, V>
where
    F: Fn(&In) -> V + Send + Sync + 'static,
{
    type Acc = Option<V>;
    type Out = V;
    fn create(&self) -> Option<V> {
        None
    }
    #[inline]
    fn add(&self, acc: &mut Option<V>, value: &In) {
        pick(acc, (self.f)(value), |n, c| n < c);
    }
    fn merge(&self, acc: &mut Option<V>, other: &Option<V>) {
        if let Some(o) = other {
            pick(acc, *o, |n, c| n < c);
        }
    }
    /// The minimum (a window never fires empty, so the default is never used).
    fn result(&self, acc: &Option<V>) -> V {
        acc.unwrap_or_default()
    }
}

impl<F, In: 'static, V: Numeric> AggregateFunction<In> for Max<F, In, V>
where
    F: Fn(&In) -> V + Send + Sync + 'static,
{
    type Acc = Option<V>;
    type Out = V;
    fn create(&self) -> Option<V> {
        None
    }
    #[inline]
    fn add(&self, acc: &mut Option<V>, value: &In) {
        pick(acc, (self.f)(value), |n, c| n > c);
    }
    fn merge(&self, acc: &mut Option<V>, other: &Option<V>) {
        if let Some(o) = other {
            pick(acc, *o, |n, c| n > c);
        }
    }
    /// The maximum (a window never fires empty, so the default is never used).
    fn result(&self, acc: &Option<V>) -> V {
        acc.unwrap_or_default()
    }
}

impl<F, In: 'static, V: Numeric> AggregateFunction<In> for Avg<F, In, V>
where
    F: Fn(&In) -> V + Send + Sync + 'static,
{
    type Acc = (f64, u64);
    type Out = f64;
    fn create(&self) -> (f64, u64) {
        (0.0, 0)
    }
    #[inline]
    fn add(&self, acc: &mut (f64, u64), value: &In) {
        acc.0 += (self.f)(value).to_f64();
        acc.1 += 1;
    }
    fn merge(&self, acc: &mut (f64, u64), other: &(f64, u64)) {
        acc.0 += other.0;
        acc.1 += other.1;
    }
    fn result(&self, acc: &(f64, u64)) -> f64 {
        if acc.1 == 0 {
            0.0
        } else {
            acc.0 / acc.1 as f64
        }
    }
    /// Exact while the sum of integer values stays below 2^53.
    fn invertible(&self) -> bool {
        V::EXACT
    }
    fn retract(&self, acc: &mut (f64, u64), other: &(f64, u64)) {
        acc.0 -= other.0;
        acc.1 -= other.1;
    }
}

/// Keeps every element (for functions that need the whole window; not incremental).
#[derive(Clone, Copy, Debug, Default)]
pub struct Collect;

impl<In: Clone + Send + StateCodec + 'static> AggregateFunction<In> for Collect {
    type Acc = Vec<In>;
    type Out = Vec<In>;
    fn create(&self) -> Vec<In> {
        Vec::new()
    }
    fn add(&self, acc: &mut Vec<In>, value: &In) {
        acc.push(value.clone());
    }
    fn merge(&self, acc: &mut Vec<In>, other: &Vec<In>) {
        acc.extend(other.iter().cloned());
    }
    fn result(&self, acc: &Vec<In>) -> Vec<In> {
        acc.clone()
    }
}

/// Adapts a reduce function `(T, T) -> T` into an aggregation.
pub struct Reduce<F, T> {
    f: F,
    _p: PhantomData<fn(T) -> T>,
}

impl<F: Fn(&T, &T) -> T + Send + Sync + 'static, T> Reduce<F, T> {
    /// Combines values with `f`.
    pub fn new(f: F) -> Self {
        Reduce { f, _p: PhantomData }
    }
}

impl<F, T> AggregateFunction<T> for Reduce<F, T>
where
    F: Fn(&T, &T) -> T + Send + Sync + 'static,
    T: Clone + Send + StateCodec + 'static,
{
    type Acc = Option<T>;
    type Out = Option<T>;
    fn create(&self) -> Option<T> {
        None
    }
    fn add(&self, acc: &mut Option<T>, value: &T) {
        *acc = Some(match acc.take() {
            Some(a) => (self.f)(&a, value),
            None => value.clone(),
        });
    }
    fn merge(&self, acc: &mut Option<T>, other: &Option<T>) {
        if let Some(o) = other {
            self.add(acc, o);
        }
    }
    fn result(&self, acc: &Option<T>) -> Option<T> {
        acc.clone()
    }
}
