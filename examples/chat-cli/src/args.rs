//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// A terminal client for im servers, for scripting and demos.
///
/// Log in once; later commands resume the saved session. Errors go to stderr as
/// `error: <code>: <message>`; the exit status is 2 when the server says
/// `unauthorized` (log in again), 64 for a bad command line, 1 for anything else.
#[derive(Debug, Parser)]
#[command(name = "chat-cli", version)]
pub(crate) struct Args {
    /// The server: `tcp://host:port` or `ws://host:port/ws`. Default: the server of the
    /// saved session, else tcp://127.0.0.1:7100.
    #[arg(long, env = "IM_SERVER", global = true)]
    pub(crate) server: Option<String>,

    /// The state file holding the session and the sync cursors (written mode 0600).
    /// Default: ~/.im-chat-cli.json.
    #[arg(long, env = "IM_CLI_STATE", global = true)]
    pub(crate) state: Option<PathBuf>,

    /// Print one JSON object per line instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create an account (does not log in). On a server that asks for a code
    /// (`proof_required`), run `send-code` first and give the code here.
    Register {
        /// 3 to 32 of a-z 0-9 _ .
        username: String,
        /// 8 to 256 characters.
        password: String,
        /// The name others see (default: the username).
        #[arg(long)]
        name: Option<String>,
        /// The e-mail address or phone number the code was sent to.
        #[arg(long)]
        contact: Option<String>,
        /// The code it received, or the invite code you were given (`--invite` says the
        /// same): whatever proof the server asks for.
        #[arg(long, alias = "invite")]
        code: Option<String>,
    },
    /// Ask the server to send a verification code to an e-mail address or phone number,
    /// for `register --contact … --code …`.
    SendCode {
        /// Where the code goes.
        contact: String,
    },
    /// Log in, print the device token and save the session to the state file.
    Login {
        /// The account.
        username: String,
        /// Its password.
        password: String,
        /// This installation's device id; logging in again with it replaces its token.
        /// `listen` uses a second device, `<id>-listen`.
        #[arg(long, default_value = "chat-cli")]
        device: String,
        /// A second factor, when the server asks for one (`proof_required`).
        #[arg(long)]
        code: Option<String>,
    },
    /// Show the saved session (checked with the server).
    Whoami,
    /// Log out on the server and forget the saved session.
    Logout,
    /// List friends.
    Friends,
    /// Ask a user to be friends (accepts their request if they already asked).
    AddFriend {
        /// Whom.
        username: String,
        /// A note for them.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Accept a user's friend request.
    Accept {
        /// Who asked.
        username: String,
    },
    /// List pending friend requests, incoming and outgoing.
    Requests,
    /// List the groups you are in.
    Groups,
    /// Create a group.
    CreateGroup {
        /// Its name.
        name: String,
        /// First members besides you (friends), comma-separated usernames.
        #[arg(long, value_delimiter = ',')]
        members: Vec<String>,
    },
    /// Send a text message. With `-` as the text, send each line of stdin, in order.
    Send {
        /// `@username`, `#<group id>`, or a conversation id (`d:1:2`, `g:3`).
        to: String,
        /// The text, or `-` for stdin (empty lines are skipped).
        #[arg(allow_hyphen_values = true)]
        text: String,
    },
    /// Show the newest messages of a conversation, oldest first.
    History {
        /// `@username`, `#<group id>`, or a conversation id.
        to: String,
        /// How many (the server caps it).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Only messages before this seq (to page back).
        #[arg(long)]
        before: Option<u64>,
    },
    /// Print every message that arrived since the last sync, in every conversation.
    Sync,
    /// Stay connected and print events as they come; Ctrl-C stops.
    Listen {
        /// Mark each message from others read once printed.
        #[arg(long)]
        mark_read: bool,
    },
}
