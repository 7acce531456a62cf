use serde::{Deserialize, Serialize};

/// TCP transport settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TcpConfig {
    /// Largest frame accepted or sent, in bytes. Default 64 KiB.
    pub max_frame_bytes: usize,
    /// Disable Nagle's algorithm (the engine batches writes itself). Default true.
    pub nodelay: bool,
    /// Kernel receive buffer per socket, if set (smaller buffers surface slow readers
    /// sooner; mostly for tests).
    pub recv_buffer_bytes: Option<u32>,
    /// Kernel send buffer per accepted socket, if set (likewise).
    pub send_buffer_bytes: Option<u32>,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            max_frame_bytes: 64 * 1024,
            nodelay: true,
            recv_buffer_bytes: None,
            send_buffer_bytes: None,
        }
    }
}

impl TcpConfig {
    /// Sets [`max_frame_bytes`](Self::max_frame_bytes).
    pub fn with_max_frame_bytes(mut self, bytes: usize) -> Self {
        self.max_frame_bytes = bytes;
        self
    }

    /// Sets [`send_buffer_bytes`](Self::send_buffer_bytes).
    pub fn with_send_buffer_bytes(mut self, bytes: u32) -> Self {
        self.send_buffer_bytes = Some(bytes);
        self
    }

    /// Sets [`recv_buffer_bytes`](Self::recv_buffer_bytes).
    pub fn with_recv_buffer_bytes(mut self, bytes: u32) -> Self {
        self.recv_buffer_bytes = Some(bytes);
        self
    }
}
