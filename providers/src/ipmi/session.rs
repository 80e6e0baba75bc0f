//! One authenticated, encrypted RMCP+ session with a BMC: how it is opened (Get
//! Channel Authentication Capabilities, Open Session, RAKP 1 to 4), how commands
//! travel in it, and how it is closed.
//!
//! - **Opening** proves both sides know the password: the BMC's RAKP 2 HMAC is
//!   checked before anything is sent that depends on it, and its RAKP 4 integrity
//!   check value after. A mismatch is [`DriverError::Permanent`] ("wrong password"),
//!   and the BMC is told to drop the half-open session (a RAKP 3 with an error
//!   status) so that failed logins do not use up its session slots. Any failure
//!   after Open Session does the same, from `Drop`.
//! - **Commands** are IPMI LAN messages, AES-CBC-128 encrypted with a fresh random
//!   IV and signed with HMAC-SHA1-96 under a session sequence number that grows with
//!   every packet (retransmissions included, as the BMC's replay window wants). An
//!   answer counts only if its AuthCode verifies, it decrypts with a valid pad and it
//!   echoes our request's sequence number, network function and command.
//! - **Privilege**: a session starts at user level whatever was requested; Set
//!   Session Privilege Level raises it before the first command that needs more.
//! - **Health**: a command that got no answer marks the session unhealthy, so the
//!   driver opens a new one instead of talking into a session the BMC has dropped.
//! - **Closing**: [`Session::close`] sends Close Session and waits for the answer;
//!   dropping an open session sends Close Session without waiting (best effort).

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use super::chassis::{
    self, ChassisControl, SessionInfo, CLOSE_SESSION_CODES, CMD_CHASSIS_CONTROL, CMD_CLOSE_SESSION,
    CMD_GET_CHANNEL_AUTH_CAPS, CMD_GET_CHASSIS_STATUS, CMD_GET_SESSION_INFO,
    CMD_SET_SESSION_PRIVILEGE, NETFN_APP, NETFN_CHASSIS, SET_PRIVILEGE_CODES,
};
use super::codes::{completion_error, rmcp_status_error};
use super::config::{IpmiConfig, Privilege};
use super::crypto::{Rakp, SessionKeys, AUTHCODE_LEN};
use super::packet::{
    self, decode_response, encode_request, parse_plus, payload, unwrap_v15, wrap_plus_clear,
    wrap_v15, Response, PAYLOAD_AUTHENTICATED, PAYLOAD_ENCRYPTED,
};
use super::rakp::{self, OpenSessionResponse, Rakp2, Rakp4, NAME_ONLY_LOOKUP};
use super::transport::Transport;
use crate::error::DriverError;
use crate::power::PowerState;

/// How hard to try one command: how many sends, and until when.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// Sends at most (the first included).
    pub tries: u32,
    /// Never wait past this.
    pub deadline: Instant,
}

/// RAKP 3 status telling the BMC to abandon the session: "invalid integrity check
/// value" (its RAKP 2 did not verify, or we gave up).
const ABANDON_STATUS: u8 = 0x0F;

/// An open RMCP+ session (cipher suite 3). `Debug` shows no key.
pub(crate) struct Session {
    transport: Transport,
    /// Ours (the BMC puts it in its packets).
    sid_m: u32,
    /// The BMC's (we put it in ours).
    sid_c: u32,
    keys: SessionKeys,
    /// Our last session sequence number.
    out_seq: u32,
    /// Our last IPMI request sequence number (6 bits).
    rq_seq: u8,
    /// Current session privilege level.
    privilege: u8,
    last_used: Instant,
    healthy: bool,
    closed: bool,
    /// `host:port`, for messages.
    bmc: String,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("bmc", &self.bmc)
            .field("sid_m", &format_args!("{:#010x}", self.sid_m))
            .field("sid_c", &format_args!("{:#010x}", self.sid_c))
            .field("out_seq", &self.out_seq)
            .field("privilege", &self.privilege)
            .field("healthy", &self.healthy)
            .finish_non_exhaustive()
    }
}

/// A half-open session on the BMC: until defused, dropping it tells the BMC to
/// forget the session (RAKP 3 with an error status), so that a failed or abandoned
/// login does not hold one of its slots until it times out.
struct HalfOpen<'a> {
    transport: &'a Transport,
    tag: u8,
    sid_c: u32,
    armed: bool,
}

impl Drop for HalfOpen<'_> {
    fn drop(&mut self) {
        if self.armed {
            // The BMC checks the AuthCode first and drops the session either way.
            let msg = rakp::rakp3(self.tag, ABANDON_STATUS, self.sid_c, &[0u8; 20]);
            self.transport
                .send_now(&wrap_plus_clear(payload::RAKP3, &msg));
        }
    }
}

impl Session {
    /// Open a session with the BMC of `cfg`, before `deadline`.
    pub async fn open(cfg: &IpmiConfig, deadline: Instant) -> Result<Session, DriverError> {
        let bmc = format!("{}:{}", cfg.host, cfg.port);
        let transport = Transport::connect(&cfg.host, cfg.port, cfg.try_timeout, deadline).await?;
        let tries = cfg.retries.saturating_add(1);
        let what = |step: &str| format!("ipmi {bmc} {step}");
        let user = cfg.username.as_bytes();
        let kuid = cfg.password.as_bytes();
        let level = cfg.privilege.level();

        // 1. Does the BMC speak IPMI 2.0 on this channel? (IPMI 1.5 framing, no
        // session.) 0x8E: this channel, with IPMI 2.0 extended data.
        let step = what("Get Channel Authentication Capabilities");
        let req = encode_request(NETFN_APP, CMD_GET_CHANNEL_AUTH_CAPS, 0, &[0x8E, level]);
        let rsp = transport
            .exchange(
                tries,
                deadline,
                || wrap_v15(&req),
                |d| {
                    let r = decode_response(unwrap_v15(d)?)?;
                    if r.netfn == NETFN_APP | 1 && r.cmd == CMD_GET_CHANNEL_AUTH_CAPS {
                        Ok(r)
                    } else {
                        Err("not the answer to Get Channel Authentication Capabilities")
                    }
                },
            )
            .await
            .map_err(|s| s.into_error(&step))?;
        if rsp.cc != 0 {
            return Err(completion_error(&step, rsp.cc, &[]));
        }
        let caps = chassis::parse_channel_auth(&rsp.data)
            .map_err(|m| DriverError::Retryable(format!("ipmi {bmc} {m}")))?;
        if !caps.ipmi20 {
            return Err(DriverError::Permanent(format!(
                "{step}: the BMC does not offer IPMI 2.0 (RMCP+, lanplus) on this channel"
            )));
        }

        // 2. Open Session: propose cipher suite 3.
        let step = what("Open Session");
        let sid_m = loop {
            let r: u32 = rand::random();
            if r != 0 {
                break r;
            }
        };
        let tag: u8 = rand::random();
        let req = rakp::open_session_request(tag, level, sid_m);
        let opened = transport
            .exchange(
                tries,
                deadline,
                || wrap_plus_clear(payload::OPEN_SESSION_REQUEST, &req),
                |d| {
                    let p = clear_payload(d, payload::OPEN_SESSION_RESPONSE)?;
                    rakp::parse_open_session_response(p, tag, sid_m)
                },
            )
            .await
            .map_err(|s| s.into_error(&step))?;
        let sid_c = match opened {
            OpenSessionResponse::Refused(code) => {
                return Err(rmcp_status_error(&step, code, &cfg.username))
            }
            OpenSessionResponse::Opened {
                sid_c, algorithms, ..
            } => {
                if algorithms != (1, 1, 1) {
                    return Err(DriverError::Permanent(format!(
                        "{step}: the BMC chose algorithms {algorithms:?} instead of cipher \
                         suite 3 (1, 1, 1)"
                    )));
                }
                sid_c
            }
        };
        let mut half_open = HalfOpen {
            transport: &transport,
            tag,
            sid_c,
            armed: true,
        };

        // 3. RAKP 1 / 2: the BMC proves it knows the password.
        let step = what("RAKP 2");
        let rand_m: [u8; 16] = rand::random();
        let role = level | NAME_ONLY_LOOKUP;
        let req = rakp::rakp1(tag, sid_c, &rand_m, role, user);
        let rakp2 = transport
            .exchange(
                tries,
                deadline,
                || wrap_plus_clear(payload::RAKP1, &req),
                |d| rakp::parse_rakp2(clear_payload(d, payload::RAKP2)?, tag, sid_m),
            )
            .await
            .map_err(|s| s.into_error(&step))?;
        let (rand_c, guid_c, auth_code) = match rakp2 {
            Rakp2::Refused(code) => {
                // The BMC dropped the session itself.
                half_open.armed = false;
                return Err(rmcp_status_error(&step, code, &cfg.username));
            }
            Rakp2::Accepted {
                rand_c,
                guid_c,
                auth_code,
            } => (rand_c, guid_c, auth_code),
        };
        let exchange = Rakp {
            sid_m,
            sid_c,
            rand_m,
            rand_c,
            guid_c,
            role,
            user,
        };
        if !exchange.verify_rakp2(kuid, &auth_code) {
            return Err(DriverError::Permanent(format!(
                "{step}: the BMC's key exchange code does not match: wrong password for user \
                 {:?}",
                cfg.username
            )));
        }

        // 4. RAKP 3 / 4: we prove it, the BMC confirms the session key.
        let step = what("RAKP 4");
        let req = rakp::rakp3(tag, 0, sid_c, &exchange.rakp3(kuid));
        let rakp4 = transport
            .exchange(
                tries,
                deadline,
                || wrap_plus_clear(payload::RAKP3, &req),
                |d| rakp::parse_rakp4(clear_payload(d, payload::RAKP4)?, tag, sid_m),
            )
            .await
            .map_err(|s| s.into_error(&step))?;
        // Without a BMC key (Kg) the SIK is keyed with the password.
        let sik = exchange.sik(kuid);
        match rakp4 {
            Rakp4::Refused(code) => {
                half_open.armed = false;
                return Err(rmcp_status_error(&step, code, &cfg.username));
            }
            Rakp4::Accepted { icv } if !exchange.verify_rakp4(&sik, &icv) => {
                let mut msg = format!("{step}: the BMC's integrity check value does not match");
                if caps.kg_set {
                    msg.push_str(
                        ": the BMC has a BMC key (Kg), which this driver does not support",
                    );
                }
                return Err(DriverError::Permanent(msg));
            }
            Rakp4::Accepted { .. } => {}
        }
        half_open.armed = false;
        drop(half_open);
        tracing::debug!(%bmc, sid_c = format_args!("{sid_c:#x}"), "ipmi: session open");
        Ok(Session {
            transport,
            sid_m,
            sid_c,
            keys: SessionKeys::derive(&sik),
            out_seq: 0,
            rq_seq: 0,
            privilege: Privilege::User.level(),
            last_used: Instant::now(),
            healthy: true,
            closed: false,
            bmc,
        })
    }

    /// False once a command went unanswered: the BMC may have dropped the session.
    pub fn healthy(&self) -> bool {
        self.healthy
    }

    /// Time since the last answered command.
    pub fn idle(&self) -> Duration {
        self.last_used.elapsed()
    }

    fn what(&self, command: &str) -> String {
        format!("ipmi {} {command}", self.bmc)
    }

    /// An authenticated, encrypted packet carrying `msg`, with the next sequence
    /// number.
    fn seal(keys: &SessionKeys, sid_c: u32, out_seq: &mut u32, msg: &[u8]) -> Vec<u8> {
        *out_seq = out_seq.wrapping_add(1).max(1);
        let payload = keys.encrypt(msg, rand::random());
        packet::wrap_plus_authenticated(
            PAYLOAD_ENCRYPTED | payload::IPMI,
            sid_c,
            *out_seq,
            &payload,
            |b| keys.authcode(b),
        )
    }

    /// Send one command and return the BMC's answer (any completion code), within
    /// `budget`. No answer marks the session unhealthy.
    async fn command(
        &mut self,
        name: &str,
        netfn: u8,
        cmd: u8,
        data: &[u8],
        budget: Budget,
    ) -> Result<Response, DriverError> {
        self.rq_seq = (self.rq_seq + 1) & 0x3F;
        let rq_seq = self.rq_seq;
        let msg = encode_request(netfn, cmd, rq_seq, data);
        let Session {
            transport,
            sid_m,
            sid_c,
            keys,
            out_seq,
            ..
        } = self;
        let (sid_m, sid_c, keys) = (*sid_m, *sid_c, &*keys);
        let result = transport
            .exchange(
                budget.tries,
                budget.deadline,
                || Session::seal(keys, sid_c, out_seq, &msg),
                |d| {
                    let p = parse_plus(d, AUTHCODE_LEN)?;
                    if p.session_id != sid_m {
                        return Err("packet for another session");
                    }
                    if p.kind() != payload::IPMI {
                        return Err("not an IPMI payload");
                    }
                    let want = PAYLOAD_ENCRYPTED | PAYLOAD_AUTHENTICATED;
                    if p.payload_type & want != want {
                        return Err("unprotected packet in a protected session");
                    }
                    let (signed, code) = p.integrity.ok_or("no integrity trailer")?;
                    if !keys.verify_authcode(signed, code) {
                        return Err("AuthCode does not verify");
                    }
                    let r = decode_response(&keys.decrypt(p.payload)?)?;
                    if r.rq_seq != rq_seq || r.cmd != cmd || r.netfn != netfn | 1 {
                        return Err("answer to another request");
                    }
                    Ok(r)
                },
            )
            .await;
        match result {
            Ok(r) => {
                self.last_used = Instant::now();
                Ok(r)
            }
            Err(silence) => {
                self.healthy = false;
                Err(silence.into_error(&self.what(name)))
            }
        }
    }

    /// [`Session::command`], with a non-zero completion code turned into an error.
    async fn command_ok(
        &mut self,
        name: &str,
        netfn: u8,
        cmd: u8,
        data: &[u8],
        specific: &[(u8, &str, bool)],
        budget: Budget,
    ) -> Result<Vec<u8>, DriverError> {
        let r = self.command(name, netfn, cmd, data, budget).await?;
        if r.cc != 0 {
            return Err(completion_error(&self.what(name), r.cc, specific));
        }
        Ok(r.data)
    }

    /// Get Chassis Status: the power state and its evidence.
    pub async fn chassis_status(
        &mut self,
        budget: Budget,
    ) -> Result<(PowerState, String), DriverError> {
        let name = "Get Chassis Status";
        let data = self
            .command_ok(
                name,
                NETFN_CHASSIS,
                CMD_GET_CHASSIS_STATUS,
                &[],
                &[],
                budget,
            )
            .await?;
        chassis::parse_chassis_status(&data)
            .map_err(|m| DriverError::Retryable(format!("ipmi {} {m}", self.bmc)))
    }

    /// Raise the session to `privilege` (Set Session Privilege Level) unless it is
    /// there already.
    pub async fn ensure_privilege(
        &mut self,
        privilege: Privilege,
        budget: Budget,
    ) -> Result<(), DriverError> {
        let level = privilege.level();
        if self.privilege >= level {
            return Ok(());
        }
        let data = self
            .command_ok(
                "Set Session Privilege Level",
                NETFN_APP,
                CMD_SET_SESSION_PRIVILEGE,
                &[level],
                SET_PRIVILEGE_CODES,
                budget,
            )
            .await?;
        self.privilege = data.first().map_or(level, |l| l & 0x0F);
        Ok(())
    }

    /// Chassis Control (at the configured privilege): the BMC's acceptance as
    /// evidence.
    pub async fn chassis_control(
        &mut self,
        control: ChassisControl,
        privilege: Privilege,
        budget: Budget,
    ) -> Result<String, DriverError> {
        if privilege >= Privilege::Operator {
            self.ensure_privilege(privilege, budget).await?;
        }
        let name = format!("Chassis Control ({})", control.name());
        self.command_ok(
            &name,
            NETFN_CHASSIS,
            CMD_CHASSIS_CONTROL,
            &[control.code()],
            &[],
            budget,
        )
        .await?;
        Ok(format!("{name} accepted"))
    }

    /// Get Session Info for our own session (how many the BMC has open).
    pub async fn session_info(&mut self, budget: Budget) -> Result<SessionInfo, DriverError> {
        let data = self
            .command_ok(
                "Get Session Info",
                NETFN_APP,
                CMD_GET_SESSION_INFO,
                &[0x00],
                &[],
                budget,
            )
            .await?;
        chassis::parse_session_info(&data, self.sid_c)
            .map_err(|m| DriverError::Retryable(format!("ipmi {} {m}", self.bmc)))
    }

    /// Close Session, waiting for the BMC's answer (within `budget`).
    pub async fn close(mut self, budget: Budget) -> Result<(), DriverError> {
        let sid = self.sid_c.to_le_bytes();
        let r = self
            .command_ok(
                "Close Session",
                NETFN_APP,
                CMD_CLOSE_SESSION,
                &sid,
                CLOSE_SESSION_CODES,
                budget,
            )
            .await;
        // Answered or not, do not send another Close Session from Drop.
        self.closed = true;
        r.map(|_| ())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        self.rq_seq = (self.rq_seq + 1) & 0x3F;
        let msg = encode_request(
            NETFN_APP,
            CMD_CLOSE_SESSION,
            self.rq_seq,
            &self.sid_c.to_le_bytes(),
        );
        let packet = Session::seal(&self.keys, self.sid_c, &mut self.out_seq, &msg);
        self.transport.send_now(&packet);
        tracing::debug!(
            bmc = %self.bmc,
            peer = %self.transport.peer(),
            "ipmi: session dropped, Close Session sent"
        );
    }
}

/// The payload of an unauthenticated RMCP+ packet of type `kind` (session set-up).
fn clear_payload(d: &[u8], kind: u8) -> Result<&[u8], &'static str> {
    let p = parse_plus(d, AUTHCODE_LEN)?;
    if p.kind() != kind {
        return Err("unexpected payload type");
    }
    if p.session_id != 0 {
        return Err("session set-up message inside a session");
    }
    Ok(p.payload)
}
