//! The global upload memory budget (`limits.upload_memory_mib`): the part buffers of all uploads
//! together stay under it.
//!
//! [`MemoryBudget`] is one fair (FIFO) semaphore counted in KiB, shared by every upload of the
//! process. Each upload holds a [`Reservation`] of whole part buffers: one more before it
//! allocates a buffer, one less when a buffer is freed. When the budget is exhausted an upload
//! waits for a part *before reading more of its data connection*, so TCP flow control slows its
//! client instead of the upload failing. Waiters are served in arrival order (tokio's semaphore
//! is fair), and while anyone waits, uploads give back their spare buffers (`S3Upload`), so the
//! parts in use keep moving from upload to upload and none starves.
//!
//! Why whole parts, not the bytes a growing buffer holds: a reservation that grows step by step
//! can deadlock (every upload holding half a part, all waiting for the other half). With whole
//! parts an upload either holds nothing and waits, or holds a part and makes progress on its own
//! (its client sends, or its parts reach S3 and come back).

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics;

const KIB: usize = 1024;

/// The budget of one process; shared (`Arc`) by every upload.
#[derive(Debug)]
pub struct MemoryBudget {
    semaphore: Arc<Semaphore>,
    total_kib: usize,
    /// Uploads waiting for a part now.
    waiting: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `bytes` (rounded down to whole KiB).
    pub fn new(bytes: u64) -> Arc<Self> {
        let total_kib = usize::try_from(bytes / KIB as u64)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        metrics::upload_memory_limit(total_kib as u64 * KIB as u64);
        Arc::new(MemoryBudget {
            semaphore: Arc::new(Semaphore::new(total_kib)),
            total_kib,
            waiting: AtomicUsize::new(0),
        })
    }

    /// Bytes reserved by uploads now.
    pub fn in_use(&self) -> u64 {
        (self.total_kib - self.semaphore.available_permits()) as u64 * KIB as u64
    }

    /// Whether some upload is waiting for a part.
    pub fn contended(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0
    }
}

/// The part buffers one upload may hold, given back when dropped. Without a budget (`None`)
/// every call succeeds at once and nothing is counted.
#[derive(Debug)]
pub struct Reservation {
    budget: Option<Arc<MemoryBudget>>,
    /// Permits (KiB) per part buffer.
    part_kib: u32,
    permit: Option<OwnedSemaphorePermit>,
    parts: usize,
}

impl Reservation {
    pub fn new(budget: Option<Arc<MemoryBudget>>, part_size: usize) -> Self {
        let part_kib = u32::try_from(part_size.div_ceil(KIB)).unwrap_or(u32::MAX);
        Reservation {
            budget,
            part_kib,
            permit: None,
            parts: 0,
        }
    }

    /// Part buffers reserved.
    pub fn parts(&self) -> usize {
        self.parts
    }

    /// Whether another upload waits for a part (then spare buffers should be given back).
    pub fn contended(&self) -> bool {
        self.budget.as_ref().is_some_and(|b| b.contended())
    }

    /// One more part, if the budget has room now and nobody waits before us.
    pub fn try_grow(&mut self) -> bool {
        let Some(budget) = &self.budget else {
            self.parts += 1;
            return true;
        };
        match budget
            .semaphore
            .clone()
            .try_acquire_many_owned(self.part_kib)
        {
            Ok(permit) => {
                self.add(permit);
                true
            }
            Err(_) => false,
        }
    }

    /// Waits (in line, first come first served) for one more part. Owns what it needs, so the
    /// caller can meanwhile drive its own parts in flight; dropping it leaves the line. Give
    /// the result to [`Reservation::add`].
    pub fn wait_for_part(
        &self,
    ) -> impl std::future::Future<Output = Option<Part>> + Send + 'static {
        let budget = self.budget.clone();
        let part_kib = self.part_kib;
        async move {
            let budget = budget?;
            metrics::upload_memory_wait();
            let _waiting = Waiting::new(&budget);
            let permit = budget
                .semaphore
                .clone()
                .acquire_many_owned(part_kib)
                .await
                .ok()?;
            Some(Part(permit))
        }
    }

    /// Adds a part granted by [`Reservation::wait_for_part`].
    pub fn add_part(&mut self, part: Part) {
        self.add(part.0);
    }

    fn add(&mut self, permit: OwnedSemaphorePermit) {
        metrics::upload_memory_changed(permit.num_permits() as i64 * KIB as i64);
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
        self.parts += 1;
    }

    /// Gives back parts until `parts` are held (their buffers were freed).
    pub fn shrink_to(&mut self, parts: usize) {
        while self.parts > parts {
            self.parts -= 1;
            let Some(held) = &mut self.permit else {
                continue;
            };
            let released = held.split(self.part_kib as usize);
            metrics::upload_memory_changed(-(self.part_kib as i64 * KIB as i64));
            drop(released);
            if self.parts == 0 {
                self.permit = None;
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.shrink_to(0);
    }
}

/// One part granted by [`Reservation::wait_for_part`].
#[derive(Debug)]
pub struct Part(OwnedSemaphorePermit);

/// Counts a waiter in [`MemoryBudget::waiting`] for as long as it lives (also when the wait is
/// cancelled).
struct Waiting(Arc<MemoryBudget>);

impl Waiting {
    fn new(budget: &Arc<MemoryBudget>) -> Self {
        budget.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(budget.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const PART: usize = 1024 * 1024;

    #[test]
    fn reservations_stay_within_the_budget_and_give_back_on_drop() {
        let budget = MemoryBudget::new(2 * PART as u64);
        let mut a = Reservation::new(Some(budget.clone()), PART);
        let mut b = Reservation::new(Some(budget.clone()), PART);
        assert!(a.try_grow());
        assert!(a.try_grow());
        assert!(!b.try_grow(), "a third part must not fit a budget of two");
        assert_eq!(budget.in_use(), 2 * PART as u64);
        a.shrink_to(1);
        assert_eq!(budget.in_use(), PART as u64);
        assert!(b.try_grow());
        drop(a);
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn without_a_budget_everything_fits() {
        let mut r = Reservation::new(None, PART);
        for _ in 0..1000 {
            assert!(r.try_grow());
        }
        assert!(!r.contended());
        r.shrink_to(0);
        assert_eq!(r.parts(), 0);
    }

    /// Waiters are served in the order they came, whatever their number, and each gets its
    /// turn as parts are given back: nobody starves, and a late try cannot jump the line.
    #[tokio::test]
    async fn waiters_are_served_first_come_first_served() {
        let budget = MemoryBudget::new(PART as u64);
        let mut holder = Reservation::new(Some(budget.clone()), PART);
        assert!(holder.try_grow());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let shared = budget.clone();
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                let mut r = Reservation::new(Some(shared), PART);
                let part = r.wait_for_part().await.expect("granted");
                r.add_part(part);
                tx.send(i).expect("send");
                // Hold the part a moment, then give it back to the next in line.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }));
            // Let task i join the line before task i + 1.
            while budget.waiting.load(Ordering::Relaxed) < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        assert!(budget.contended());
        let mut late = Reservation::new(Some(budget.clone()), PART);
        holder.shrink_to(0);
        assert!(!late.try_grow(), "a try must not jump the line of waiters");
        let mut order = Vec::new();
        for _ in 0..8 {
            order.push(rx.recv().await.expect("served"));
        }
        assert_eq!(order, (0..8).collect::<Vec<_>>());
        for t in tasks {
            t.await.expect("task");
        }
        assert!(!budget.contended());
        assert!(late.try_grow());
    }
}
