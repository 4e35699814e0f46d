//! The one writer of `[[user]]` tables for tests, so every test's users file has the same shape
//! as the product's (and a new field is added in one place).

/// Every permission the product knows.
pub const ALL: &[&str] = &[
    "list",
    "read",
    "write",
    "overwrite",
    "delete",
    "rename",
    "mkdir",
];

/// One `[[user]]` table.
pub struct UserToml {
    name: String,
    password_hash: Option<String>,
    certificate_cn: Option<String>,
    home: String,
    permissions: Vec<String>,
    /// Quotas and rates (`quota_bytes`, `max_download_kib_s`, …) and their values.
    limits: Vec<(String, u64)>,
    /// `[[user.folder]]` tables, already rendered.
    folders: Vec<String>,
}

impl UserToml {
    /// A user with no password, no certificate, home `partners/<name>/` and no permissions.
    pub fn new(name: &str) -> Self {
        UserToml {
            name: name.to_string(),
            password_hash: None,
            certificate_cn: None,
            home: format!("partners/{name}/"),
            permissions: Vec::new(),
            limits: Vec::new(),
            folders: Vec::new(),
        }
    }

    /// Logs in with `password` (stored as its argon2 hash).
    pub fn password(mut self, password: &str) -> Self {
        let hash = ftps_s3::auth::hash_password(password).expect("hash");
        self.password_hash = Some(hash);
        self
    }

    /// Logs in with an argon2 hash made elsewhere (e.g. by `ftps-s3 hash-password`).
    pub fn password_hash(mut self, hash: &str) -> Self {
        self.password_hash = Some(hash.to_string());
        self
    }

    pub fn certificate_cn(mut self, cn: &str) -> Self {
        self.certificate_cn = Some(cn.to_string());
        self
    }

    pub fn home(mut self, home: &str) -> Self {
        self.home = home.to_string();
        self
    }

    pub fn permissions(mut self, permissions: &[&str]) -> Self {
        self.permissions = permissions.iter().map(|p| p.to_string()).collect();
        self
    }

    /// A quota or rate: `quota_bytes`, `quota_files`, `max_upload_kib_s`, `max_download_kib_s`.
    pub fn limit(mut self, key: &str, value: u64) -> Self {
        self.limits.push((key.to_string(), value));
        self
    }

    /// Adds a logical folder (`bucket` `None`: the default bucket). With folders the user's
    /// `home` and `permissions` are still written, and ignored by the server.
    pub fn folder(
        mut self,
        path: &str,
        bucket: Option<&str>,
        prefix: &str,
        permissions: &[&str],
    ) -> Self {
        let mut t = format!("[[user.folder]]\npath = \"{path}\"\n");
        if let Some(b) = bucket {
            t.push_str(&format!("bucket = \"{b}\"\n"));
        }
        let perms: Vec<String> = permissions.iter().map(|p| format!("\"{p}\"")).collect();
        t.push_str(&format!(
            "prefix = \"{prefix}\"\npermissions = [{}]\n",
            perms.join(", ")
        ));
        self.folders.push(t);
        self
    }

    /// The TOML table, ending with a blank line so tables can be concatenated.
    pub fn render(&self) -> String {
        let mut out = format!("[[user]]\nname = \"{}\"\n", self.name);
        if let Some(hash) = &self.password_hash {
            out.push_str(&format!("password_hash = \"{hash}\"\n"));
        }
        if let Some(cn) = &self.certificate_cn {
            out.push_str(&format!("certificate_cn = \"{cn}\"\n"));
        }
        for (key, value) in &self.limits {
            out.push_str(&format!("{key} = {value}\n"));
        }
        let perms: Vec<String> = self
            .permissions
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect();
        out.push_str(&format!(
            "home = \"{}\"\npermissions = [{}]\n",
            self.home,
            perms.join(", ")
        ));
        // Folder tables come last: after them, keys would belong to the folder.
        for f in &self.folders {
            out.push_str(f);
        }
        out.push('\n');
        out
    }
}

/// Writes `users` as the users file at `path`.
pub fn write(path: &std::path::Path, users: &[UserToml]) {
    let text: String = users.iter().map(UserToml::render).collect();
    std::fs::write(path, text).expect("users file");
}
