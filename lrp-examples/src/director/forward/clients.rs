//! The clients' next-hop MACs: a bounded map of two generations (see the
//! [forward module docs](super#the-clients-next-hop)).

use std::collections::HashMap;
use std::net::IpAddr;

use smoltcp::wire::EthernetAddress;

/// Client address → the source MAC of its latest frame, at most `2 × max` entries.
#[derive(Debug)]
pub(super) struct ClientMacs {
    max: usize,
    current: HashMap<IpAddr, EthernetAddress, ahash::RandomState>,
    previous: HashMap<IpAddr, EthernetAddress, ahash::RandomState>,
}

impl ClientMacs {
    pub(super) fn new(max: usize) -> ClientMacs {
        ClientMacs {
            max: max.max(1),
            current: HashMap::default(),
            previous: HashMap::default(),
        }
    }

    /// Record `mac` for `client`. When the current generation is full it becomes the
    /// previous one (the old previous one is forgotten, its allocation reused).
    pub(super) fn learn(&mut self, client: IpAddr, mac: EthernetAddress) {
        if let Some(known) = self.current.get_mut(&client) {
            *known = mac;
            return;
        }
        if self.current.len() >= self.max {
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.clear();
        }
        self.current.insert(client, mac);
    }

    /// The MAC to send `client`'s replies to, if it is remembered.
    pub(super) fn get(&self, client: IpAddr) -> Option<EthernetAddress> {
        self.current
            .get(&client)
            .or_else(|| self.previous.get(&client))
            .copied()
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn two_generations_bound_memory_and_keep_active_clients() {
        let mut m = ClientMacs::new(2);
        let ip = |i: u8| IpAddr::from([10, 0, 0, i]);
        let mac = |i: u8| EthernetAddress([2, 0, 0, 0, 0, i]);
        m.learn(ip(1), mac(1));
        m.learn(ip(2), mac(2));
        m.learn(ip(3), mac(3)); // generation turns: {1,2} previous
        assert_eq!(m.get(ip(1)), Some(mac(1)));
        m.learn(ip(4), mac(4));
        m.learn(ip(5), mac(5)); // turns again: {1,2} forgotten
        assert_eq!(m.get(ip(1)), None);
        assert_eq!(m.get(ip(3)), Some(mac(3)));
        assert_eq!(m.get(ip(5)), Some(mac(5)));
        m.learn(ip(5), mac(9));
        assert_eq!(m.get(ip(5)), Some(mac(9)));
        assert!(m.current.len() + m.previous.len() <= 4);
    }
}
