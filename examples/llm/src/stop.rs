//! Stop sequences on streamed text: text that may be the start of a stop
//! string is held back until the next tokens settle it, so a client never
//! sees part of a stop string, and generation ends where one is complete.

/// Watches the generated text for any of the stop strings.
#[derive(Debug, Default)]
pub struct StopText {
    stops: Vec<String>,
    pending: String,
}

/// What one piece of text released.
#[derive(Debug, PartialEq, Eq)]
pub struct Released {
    /// Text that can go to the client now.
    pub text: String,
    /// A stop string was completed (and cut off, with all after it).
    pub stopped: bool,
}

impl StopText {
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            pending: String::new(),
        }
    }

    /// Add generated text.
    pub fn push(&mut self, delta: &str) -> Released {
        self.pending.push_str(delta);
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()))
            .min()
        {
            let text = self.pending[..at].to_string();
            self.pending.clear();
            return Released {
                text,
                stopped: true,
            };
        }
        let held = self.held_back();
        let cut = self.pending.len() - held;
        let text = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        Released {
            text,
            stopped: false,
        }
    }

    /// Generation ended without a stop string: release what was held.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }

    /// Bytes at the end of `pending` that begin some stop string.
    fn held_back(&self) -> usize {
        let p = &self.pending;
        let mut longest = 0;
        for stop in &self.stops {
            for (i, _) in p.char_indices() {
                let tail = &p[i..];
                if tail.len() <= longest {
                    break;
                }
                if stop.starts_with(tail) {
                    longest = tail.len();
                    break;
                }
            }
        }
        longest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut s = StopText::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for p in pieces {
            let r = s.push(p);
            out.push_str(&r.text);
            if r.stopped {
                return (out, true);
            }
        }
        out.push_str(&s.finish());
        (out, false)
    }

    #[test]
    fn a_stop_split_across_tokens_is_cut_and_never_shown() {
        let mut s = StopText::new(vec!["\nUser:".into()]);
        assert_eq!(s.push("Hi there").text, "Hi there");
        // "\nUs" could start the stop string: held.
        assert_eq!(s.push("\nUs").text, "");
        let r = s.push("er: more");
        assert_eq!(
            r,
            Released {
                text: String::new(),
                stopped: true
            }
        );
        assert_eq!(
            run(&["\nUser:"], &["a", "\nUs", "er:", "x"]),
            ("a".into(), true)
        );
    }

    #[test]
    fn held_text_is_released_when_it_turns_out_not_to_stop() {
        assert_eq!(run(&["END"], &["the E", "ND"]), ("the ".into(), true));
        assert_eq!(run(&["END"], &["the E", "nd"]), ("the End".into(), false));
        assert_eq!(run(&["END"], &["x E"]), ("x E".into(), false));
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), false));
    }

    #[test]
    fn the_earliest_of_several_stops_wins_and_unicode_is_kept_whole() {
        assert_eq!(run(&["b", "a"], &["xxab"]), ("xx".into(), true));
        assert_eq!(run(&["東京"], &["in 東", "京 now"]), ("in ".into(), true));
        assert_eq!(run(&["東京"], &["in 東", "北"]), ("in 東北".into(), false));
    }
}
