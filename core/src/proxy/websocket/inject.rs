//! The open WebSocket flows, by id, so that addons and commands can inject messages into them
//! (mitmproxy's `inject.websocket`).

use std::sync::{Mutex, PoisonError};

use interpose_plugin_abi::flow::Uuid;
use tokio::sync::mpsc;

/// Messages an open WebSocket flow queues for injection before `inject` refuses more.
const QUEUE: usize = 256;

/// A message to send on an open WebSocket flow.
pub struct Injection {
    /// To the client (else to the server).
    pub to_client: bool,
    /// The payload.
    pub content: Vec<u8>,
    /// A text message (else binary).
    pub is_text: bool,
}

/// Every open WebSocket flow, with the way to its relay.
static OPEN: Mutex<Vec<(Uuid, mpsc::Sender<Injection>)>> = Mutex::new(Vec::new());

/// Keeps a WebSocket flow reachable for injection while it lives.
pub struct Registration(Uuid);

impl Drop for Registration {
    fn drop(&mut self) {
        let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(index) = open.iter().position(|(id, _)| *id == self.0) {
            open.swap_remove(index);
        }
    }
}

/// Makes the WebSocket flow `id` reachable until the registration drops; injected messages
/// arrive on the receiver.
pub fn register(id: Uuid) -> (Registration, mpsc::Receiver<Injection>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    OPEN.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((id, tx));
    (Registration(id), rx)
}

/// Queues `injection` for the open WebSocket flow `id`.
pub fn inject(id: Uuid, injection: Injection) -> Result<(), String> {
    let sender = OPEN
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .find(|(open, _)| *open == id)
        .map(|(_, tx)| tx.clone());
    let Some(sender) = sender else {
        return Err(format!("no open WebSocket flow with id {id}"));
    };
    sender.try_send(injection).map_err(|e| match e {
        mpsc::error::TrySendError::Full(_) => {
            format!("WebSocket flow {id} has {QUEUE} injected messages waiting already")
        }
        mpsc::error::TrySendError::Closed(_) => format!("no open WebSocket flow with id {id}"),
    })
}

/// The ids of the open WebSocket flows.
pub fn open_ids() -> Vec<Uuid> {
    OPEN.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|(id, _)| *id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaches_a_registered_flow_until_it_closes() {
        let id = Uuid([7; 16]);
        let message = || Injection {
            to_client: true,
            content: b"hi".to_vec(),
            is_text: true,
        };
        assert!(inject(id, message())
            .unwrap_err()
            .contains("no open WebSocket"));
        let (registration, mut rx) = register(id);
        assert!(open_ids().contains(&id));
        inject(id, message()).unwrap();
        assert_eq!(rx.try_recv().unwrap().content, b"hi");
        for _ in 0..QUEUE {
            inject(id, message()).unwrap();
        }
        assert!(inject(id, message())
            .unwrap_err()
            .contains("waiting already"));
        drop(registration);
        assert!(!open_ids().contains(&id));
        assert!(inject(id, message()).is_err());
    }
}
