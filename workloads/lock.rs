//! Lock contention test workload in Rust (std::sync::Mutex): as lock.c, a
//! holder thread keeps mutex 0 for 60 ms while a waiter blocks on it in
//! `wait_long`, then mutex 1 for 20 ms while another blocks in
//! `wait_short`, for argv[1] loops; each waiter says it is about to lock
//! (a channel) before it does, and the hold starts only then. argv[2], if
//! given, is a pause in ms before the threads start. Built by the tests as
//! a default release build (no frame pointers).

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

const HOLD_MS: [u64; 2] = [60, 20];

#[inline(never)]
fn wait_long(m: &Mutex<u64>) {
    *m.lock().unwrap() += 1;
}

#[inline(never)]
fn wait_short(m: &Mutex<u64>) {
    *m.lock().unwrap() += 1;
}

fn waiter(i: usize, locks: Arc<[Mutex<u64>; 2]>, go: Receiver<()>, ready: Sender<()>, done: Sender<()>) {
    while go.recv().is_ok() {
        ready.send(()).unwrap();
        if i == 0 {
            wait_long(&locks[0]);
        } else {
            wait_short(&locks[1]);
        }
        done.send(()).unwrap();
    }
}

fn main() {
    let arg = |i: usize| std::env::args().nth(i).and_then(|a| a.parse().ok());
    let loops: u64 = arg(1).unwrap_or(30);
    thread::sleep(Duration::from_millis(arg(2).unwrap_or(0)));
    let locks = Arc::new([Mutex::new(0), Mutex::new(0)]);
    let mut chans = Vec::new();
    let mut threads = Vec::new();
    for i in 0..2 {
        let (go_tx, go_rx) = channel();
        let (ready_tx, ready_rx) = channel();
        let (done_tx, done_rx) = channel();
        let l = Arc::clone(&locks);
        threads.push(thread::spawn(move || waiter(i, l, go_rx, ready_tx, done_tx)));
        chans.push((go_tx, ready_rx, done_rx));
    }
    for _ in 0..loops {
        for (i, (go, ready, done)) in chans.iter().enumerate() {
            let guard = locks[i].lock().unwrap();
            go.send(()).unwrap();
            ready.recv().unwrap();
            thread::sleep(Duration::from_millis(HOLD_MS[i]));
            drop(guard);
            done.recv().unwrap();
        }
    }
    drop(chans);
    for t in threads {
        t.join().unwrap();
    }
}
