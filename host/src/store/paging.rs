//! Keyset paging, shared by every list: rows ordered by `(key, id)`, a page after or before a cursor row, one
//! more row fetched than asked to tell whether more lie beyond.

/// Which rows to list, and in which order.
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub limit: u32,
    /// The id of the row the page starts after.
    pub after: Option<String>,
    /// The id of the row the page ends before.
    pub before: Option<String>,
    pub descending: bool,
}

impl Page {
    /// A `before` page is scanned away from the cursor, in the opposite order, and flipped back by `finish`.
    fn scans_backwards(&self) -> bool {
        self.after.is_none() && self.before.is_some()
    }

    /// The cursor row's id, if the page has one.
    pub(super) fn cursor(&self) -> Option<&str> {
        self.after.as_deref().or(self.before.as_deref())
    }

    /// The SQL of a keyset page over `(key, id)`: the condition against the cursor (whose key and id are bound as
    /// `$first` and `$first + 1`; None without a cursor) and the `ORDER BY … LIMIT …` tail.
    pub(super) fn sql(&self, key: &str, first: usize) -> (Option<String>, String) {
        let (cmp, desc) = match (self.descending, self.scans_backwards()) {
            (true, false) | (false, true) => ("<", true),
            (true, true) | (false, false) => (">", false),
        };
        let condition = self.cursor().map(|_| format!("({key}, id) {cmp} (${first}, ${})", first + 1));
        let dir = if desc { "DESC" } else { "ASC" };
        (condition, format!("ORDER BY {key} {dir}, id {dir} LIMIT {}", self.limit as i64 + 1))
    }

    /// The rows of the page in the order asked for, and whether more lie beyond it.
    pub(super) fn finish<T>(&self, mut rows: Vec<T>) -> (Vec<T>, bool) {
        let has_more = rows.len() > self.limit as usize;
        rows.truncate(self.limit as usize);
        if self.scans_backwards() {
            rows.reverse();
        }
        (rows, has_more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(after: Option<&str>, before: Option<&str>, descending: bool) -> Page {
        Page { limit: 2, after: after.map(Into::into), before: before.map(Into::into), descending }
    }

    #[test]
    fn directions() {
        let cases = [
            (page(None, None, false), None, "ORDER BY k ASC, id ASC LIMIT 3"),
            (page(None, None, true), None, "ORDER BY k DESC, id DESC LIMIT 3"),
            (page(Some("a"), None, false), Some("(k, id) > ($2, $3)"), "ORDER BY k ASC, id ASC LIMIT 3"),
            (page(Some("a"), None, true), Some("(k, id) < ($2, $3)"), "ORDER BY k DESC, id DESC LIMIT 3"),
            (page(None, Some("b"), false), Some("(k, id) < ($2, $3)"), "ORDER BY k DESC, id DESC LIMIT 3"),
            (page(None, Some("b"), true), Some("(k, id) > ($2, $3)"), "ORDER BY k ASC, id ASC LIMIT 3"),
        ];
        for (page, condition, tail) in cases {
            let (c, t) = page.sql("k", 2);
            assert_eq!((c.as_deref(), t.as_str()), (condition, tail), "{page:?}");
        }
    }

    #[test]
    fn a_page_tells_whether_more_lie_beyond_and_reads_in_order() {
        assert_eq!(page(None, None, false).finish(vec![1, 2, 3]), (vec![1, 2], true));
        assert_eq!(page(None, None, false).finish(vec![1, 2]), (vec![1, 2], false));
        // Scanned backwards from the cursor: 5, 4 (and 3 beyond), read as 4, 5.
        assert_eq!(page(None, Some("6"), false).finish(vec![5, 4, 3]), (vec![4, 5], true));
    }
}
