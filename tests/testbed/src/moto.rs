use std::process::Command;
use std::time::Duration;

use crate::process::{free_port, venv_program, Guarded};

/// moto's real HTTP AWS emulator, on 127.0.0.1 and a free port.
pub struct Moto {
    pub endpoint: String,
    process: Guarded,
}

impl Moto {
    pub fn start(log_dir: &std::path::Path) -> Moto {
        let port = free_port();
        let mut process = Guarded::spawn(
            "moto",
            Command::new(venv_program("moto_server")).args(["-H", "127.0.0.1", "-p", &port.to_string()]),
            log_dir,
        );
        process.wait_for_port(port, Duration::from_secs(60));
        Moto { endpoint: format!("http://127.0.0.1:{port}"), process }
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    /// An SDK configuration for this moto: static test credentials, us-east-1, its endpoint.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "testbed"))
            .endpoint_url(&self.endpoint)
            .load()
            .await
    }

    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.sdk_config().await).force_path_style(true).build();
        aws_sdk_s3::Client::from_conf(config)
    }
}
