//! What a one-word `search` costs `SqlStorage` on a SQLite file of 1,000,000 messages.
//!
//! The store is filled the way a server fills it (`append_many`, so the FTS5 triggers run
//! on every insert): 2,000 users, 10,000 direct chats between random pairs and 200 groups
//! of 50, with texts of 4 to 14 words drawn from a 30,000-word vocabulary by a Zipf law
//! (s = 1.07, as in natural text), so a few words are in most messages and most words in
//! few. A user reads about one message in a hundred. Then searchers ask for one word at
//! a time, a page of 51 as the engine asks (`engine/search.rs`), and the latencies are
//! printed per kind of word:
//! - `frequent`: the 20 most common words (the first page fills fast);
//! - `medium`: ranks 100 to 1,000;
//! - `rare`: ranks 5,000 to 30,000 (few matches anywhere);
//! - `prefix`: the first three letters of a medium word;
//! - `elsewhere`: a word in one message in ten, none of them the searcher's (the worst
//!   case of an index walked newest first: every match is looked at and refused).
//!
//! Run with `cargo bench -p im-store --bench search` (`IM_BENCH_MESSAGES` to change the
//! size, `IM_BENCH_QUERIES` the queries per kind, `IM_BENCH_DB` to keep the database).

use std::time::{Duration, Instant};

use im_core::auth::{HashCost, PasswordHasher};
use im_core::model::{Body, ConversationId, DeviceId, Role, SystemEvent, Timestamp, UserId};
use im_core::storage::{
    GroupStore, MessageStore, NewGroup, NewMessage, NewUser, SearchQuery, SearchStore, SearchTerms,
    UserStore,
};
use im_store::SqlStorage;

const USERS: u64 = 2_000;
const DIRECT_CHATS: usize = 10_000;
const GROUPS: usize = 200;
const GROUP_SIZE: usize = 50;
const VOCABULARY: usize = 30_000;
const ZIPF_S: f64 = 1.07;
/// Share of messages that go to groups.
const GROUP_SHARE: f64 = 0.3;
/// The users who search; the `elsewhere` word is never in their conversations.
const SEARCHERS: u64 = 20;
/// The searchers' password.
const PASSWORD: &str = "search-bench";
/// The page the engine asks for by default, plus the one that tells whether there is more.
const PAGE: u32 = 51;

/// Draws one query word.
type Pick<'a> = Box<dyn Fn(&mut Rng) -> String + 'a>;

/// xorshift64*: deterministic, so every run stores the same texts.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The word of a rank: two to four syllables, distinct for each rank.
fn word(rank: usize) -> String {
    const SYLLABLES: [&str; 24] = [
        "ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "bi", "da", "fu", "go", "hi", "ju", "ke",
        "la", "mo", "ni", "pe", "ri", "so", "tu", "wa", "ye",
    ];
    let mut n = rank + SYLLABLES.len(); // at least two syllables
    let mut w = String::new();
    while n > 0 {
        w.push_str(SYLLABLES[n % SYLLABLES.len()]);
        n /= SYLLABLES.len();
    }
    w
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[at - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let messages = env("IM_BENCH_MESSAGES", 1_000_000);
    let queries = env("IM_BENCH_QUERIES", 200);
    let dir = tempfile::tempdir().expect("temporary directory");
    // IM_BENCH_DB keeps the database at that path, to look at its plans afterwards.
    let path = std::env::var_os("IM_BENCH_DB")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("search.db"));
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let s = SqlStorage::connect(&url).await.expect("connect");
    let mut rng = Rng(0x5eed);

    // Users, groups and chats. The searchers can log in (password `search-bench`), so
    // a server started on the kept database can be searched the same way.
    let hash = PasswordHasher::new(HashCost::CHEAPEST)
        .and_then(|h| h.hash(PASSWORD))
        .expect("a password hash");
    for n in 0..USERS {
        s.create_user(NewUser {
            username: format!("user{n}"),
            display_name: format!("User {n}"),
            avatar: None,
            password_hash: if n < SEARCHERS {
                hash.clone()
            } else {
                String::new()
            },
            created_at: Timestamp::now(),
        })
        .await
        .expect("user");
    }
    let id = |n: usize| UserId(n as u64 + 1);
    let searcher = |u: UserId| u.0 <= SEARCHERS;
    let mut directs = Vec::with_capacity(DIRECT_CHATS);
    while directs.len() < DIRECT_CHATS {
        let (a, b) = (id(rng.below(USERS as usize)), id(rng.below(USERS as usize)));
        if a != b {
            directs.push((ConversationId::direct(a, b), a, b));
        }
    }
    let mut groups = Vec::with_capacity(GROUPS);
    for g in 0..GROUPS {
        let mut members: Vec<UserId> = Vec::new();
        while members.len() < GROUP_SIZE {
            let u = id(rng.below(USERS as usize));
            if !members.contains(&u) {
                members.push(u);
            }
        }
        let owner = members[0];
        let roles: Vec<(UserId, Role)> = members
            .iter()
            .map(|&u| {
                (
                    u,
                    if u == owner {
                        Role::Owner
                    } else {
                        Role::Member
                    },
                )
            })
            .collect();
        let record = NewMessage {
            sender: owner,
            sender_device: DeviceId::new("bench").expect("device"),
            client_id: String::new(),
            body: Body::System {
                event: SystemEvent::GroupCreated {
                    by: owner,
                    name: format!("group {g}"),
                    members: members.clone(),
                },
            },
            sent_at: Timestamp::now(),
            reply_to: None,
            forwarded: None,
            mentions: Vec::new(),
        };
        let new = NewGroup {
            name: format!("group {g}"),
            owner,
            open: false,
            created_at: Timestamp::now(),
        };
        let (group, _) = s.create_group(new, roles, record).await.expect("group");
        groups.push((ConversationId::Group(group.id), members));
    }

    // The Zipf law's cumulative weights, for drawing words by rank.
    let mut cumulative = Vec::with_capacity(VOCABULARY);
    let mut total = 0.0;
    for rank in 1..=VOCABULARY {
        total += 1.0 / (rank as f64).powf(ZIPF_S);
        cumulative.push(total);
    }
    let vocabulary: Vec<String> = (0..VOCABULARY).map(word).collect();
    let elsewhere = "zelsewhere";

    // The messages, a thousand per append_many, as a busy server's batches.
    let started = Instant::now();
    let device = DeviceId::new("bench").expect("device");
    let mut batch = Vec::with_capacity(1000);
    for n in 0..messages {
        let (conversation, sender, theirs) = if rng.unit() < GROUP_SHARE {
            let (c, members) = &groups[rng.below(GROUPS)];
            let sender = members[rng.below(members.len())];
            (*c, sender, members.iter().any(|&m| searcher(m)))
        } else {
            let (c, a, b) = directs[rng.below(DIRECT_CHATS)];
            let sender = if rng.unit() < 0.5 { a } else { b };
            (c, sender, searcher(a) || searcher(b))
        };
        let words = 4 + rng.below(11);
        let mut text = String::new();
        for w in 0..words {
            let x = rng.unit() * total;
            let rank = cumulative.partition_point(|&c| c < x).min(VOCABULARY - 1);
            if w > 0 {
                text.push(' ');
            }
            text.push_str(&vocabulary[rank]);
        }
        if !theirs && n % 10 == 0 {
            text.push(' ');
            text.push_str(elsewhere);
        }
        batch.push((
            conversation,
            NewMessage {
                sender,
                sender_device: device.clone(),
                client_id: format!("{n:016}"),
                body: Body::Text { text },
                sent_at: Timestamp::now(),
                reply_to: None,
                forwarded: None,
                mentions: Vec::new(),
            },
        ));
        if batch.len() == 1000 || n + 1 == messages {
            for r in s.append_many(std::mem::take(&mut batch)).await {
                r.expect("append");
            }
        }
    }
    let fill = started.elapsed();
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "stored {messages} messages in {:.1} s ({:.0}/s), database {} MB",
        fill.as_secs_f64(),
        messages as f64 / fill.as_secs_f64(),
        size / 1_000_000
    );

    // The queries.
    let kinds: [(&str, Pick<'_>); 5] = [
        (
            "frequent",
            Box::new(|r: &mut Rng| vocabulary[r.below(20)].clone()),
        ),
        (
            "medium",
            Box::new(|r: &mut Rng| vocabulary[100 + r.below(900)].clone()),
        ),
        (
            "rare",
            Box::new(|r: &mut Rng| vocabulary[5_000 + r.below(VOCABULARY - 5_000)].clone()),
        ),
        (
            "prefix",
            Box::new(|r: &mut Rng| vocabulary[100 + r.below(900)][..3].to_owned()),
        ),
        ("elsewhere", Box::new(|_: &mut Rng| elsewhere.to_owned())),
    ];
    println!(
        "{:<10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "query", "queries", "p50 ms", "p90 ms", "p99 ms", "max ms", "hits/q"
    );
    // With IM_BENCH_DB, the queries are written beside it (`<db>.queries`: kind, user
    // and query, tab-separated), for `examples/loadgen/search_server.py` to ask a
    // server started on the database the same ones.
    let mut log = std::env::var_os("IM_BENCH_DB").map(|_| {
        let mut name = path.clone().into_os_string();
        name.push(".queries");
        std::io::BufWriter::new(std::fs::File::create(name).expect("the query log"))
    });
    let mut all = Vec::new();
    for (kind, pick) in &kinds {
        let mut times = Vec::with_capacity(queries);
        let mut hits = 0;
        for q in 0..queries {
            let user = UserId(1 + (q as u64 % SEARCHERS));
            let word = pick(&mut rng);
            if let Some(log) = &mut log {
                use std::io::Write;
                writeln!(log, "{kind}\tuser{}\t{word}", user.0 - 1).expect("the query log");
            }
            let query = SearchQuery {
                terms: SearchTerms::parse(&word).expect("a word"),
                conversation: None,
                before: None,
                limit: PAGE,
            };
            let t = Instant::now();
            let found = s.search(user, &query).await.expect("search");
            times.push(t.elapsed());
            hits += found.len();
            if *kind == "elsewhere" {
                assert!(found.is_empty(), "the searchers never saw it");
            }
        }
        times.sort();
        println!(
            "{:<10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8.1}",
            kind,
            queries,
            ms(percentile(&times, 0.50)),
            ms(percentile(&times, 0.90)),
            ms(percentile(&times, 0.99)),
            ms(*times.last().expect("a query")),
            hits as f64 / queries as f64
        );
        all.extend(times);
    }
    if let Some(mut log) = log {
        use std::io::Write;
        log.flush().expect("the query log");
    }
    all.sort();
    println!(
        "{:<10} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "all",
        all.len(),
        ms(percentile(&all, 0.50)),
        ms(percentile(&all, 0.90)),
        ms(percentile(&all, 0.99)),
        ms(*all.last().expect("a query")),
    );
}
