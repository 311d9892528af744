//! Local users and groups, from /etc/passwd and /etc/group: names for
//! events, and group membership for policy rules and the console's admin
//! group. Directory services (LDAP, SSSD) are not read: a uid they define
//! is reported by number and belongs to its primary group only.

use std::collections::HashMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounts {
    users: HashMap<u32, User>,
    /// (name, gid, members by user name)
    groups: Vec<(String, u32, Vec<String>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct User {
    name: String,
    primary_gid: u32,
    home: String,
    shell: String,
}

/// A person's account: uid from 1000 (below are the system's; 65534 is
/// `nobody`) with a shell that logs in.
fn is_person(uid: u32, shell: &str) -> bool {
    (1000..65534).contains(&uid) && !shell.ends_with("nologin") && !shell.ends_with("/false")
}

impl Accounts {
    /// Reads the system files; a missing or unreadable one counts as empty.
    pub fn load() -> Self {
        let read = |path| std::fs::read_to_string(path).unwrap_or_default();
        Self::parse(&read("/etc/passwd"), &read("/etc/group"))
    }

    /// Lines that do not parse are skipped, as the C library does.
    pub fn parse(passwd: &str, group: &str) -> Self {
        let users = passwd
            .lines()
            .filter_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next().filter(|n| !n.is_empty() && !n.starts_with(['#', '+', '-']))?;
                let uid = fields.nth(1)?.parse().ok()?;
                let primary_gid = fields.next()?.parse().ok()?;
                let home = fields.nth(1).unwrap_or_default().to_owned();
                let shell = fields.next().unwrap_or_default().to_owned();
                Some((uid, User { name: name.to_owned(), primary_gid, home, shell }))
            })
            .collect();
        let groups = group
            .lines()
            .filter_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next().filter(|n| !n.is_empty() && !n.starts_with(['#', '+', '-']))?;
                let gid = fields.nth(1)?.parse().ok()?;
                let members = fields
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect();
                Some((name.to_owned(), gid, members))
            })
            .collect();
        Self { users, groups }
    }

    pub fn user_name(&self, uid: u32) -> Option<&str> {
        self.users.get(&uid).map(|user| user.name.as_str())
    }

    /// The people's accounts and their home folders (see [`is_person`]),
    /// by uid: (uid, name, home).
    pub fn people(&self) -> Vec<(u32, &str, &str)> {
        let mut people: Vec<(u32, &str, &str)> = self
            .users
            .iter()
            .filter(|(uid, user)| is_person(**uid, &user.shell) && !user.home.is_empty())
            .map(|(uid, user)| (*uid, user.name.as_str(), user.home.as_str()))
            .collect();
        people.sort_unstable();
        people
    }

    /// The names of `uid`'s groups: its primary group and every group that
    /// lists it as a member.
    pub fn groups_of(&self, uid: u32) -> Vec<String> {
        let Some(user) = self.users.get(&uid) else { return Vec::new() };
        self.groups
            .iter()
            .filter(|(_, gid, members)| *gid == user.primary_gid || members.contains(&user.name))
            .map(|(group, _, _)| group.clone())
            .collect()
    }

    pub fn is_member(&self, uid: u32, group: &str) -> bool {
        self.groups_of(uid).iter().any(|g| g == group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\n\
        bob:x:1001:1001::/home/bob:/bin/sh\n\
        broken line\n\
        +nisuser::::::\n\
        eve:x:notanumber:1:::\n";
    const GROUP: &str = "root:x:0:\n\
        alice:x:1000:\n\
        bob:x:1001:\n\
        vigie-admin:x:990:alice\n\
        dev-copilot:x:991:bob, alice\n\
        # comment\n";

    #[test]
    fn names_and_groups() {
        let accounts = Accounts::parse(PASSWD, GROUP);
        assert_eq!(accounts.user_name(1000), Some("alice"));
        assert_eq!(accounts.user_name(4242), None);
        assert_eq!(accounts.groups_of(1000), vec!["alice", "vigie-admin", "dev-copilot"]);
        assert_eq!(accounts.groups_of(1001), vec!["bob", "dev-copilot"]);
        assert!(accounts.is_member(1000, "vigie-admin"));
        assert!(!accounts.is_member(1001, "vigie-admin"));
        assert!(accounts.groups_of(4242).is_empty());
        // People: root, broken lines and the NIS entry are not.
        assert_eq!(accounts.people(), [(1000, "alice", "/home/alice"), (1001, "bob", "/home/bob")]);
        let service =
            Accounts::parse("svc:x:1002:1002::/srv:/usr/sbin/nologin\nnobody:x:65534:65534::/:/bin/sh\n", "");
        assert!(service.people().is_empty(), "no login shell, or nobody");
    }
}
