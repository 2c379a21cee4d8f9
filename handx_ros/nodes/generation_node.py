"""``generation_node``: bimanual motion from text, and the other hand's reaction to one
observed hand, with the trained models (:class:`handx_gen.generate.Generator`).

Topics (DESIGN.md):

* in ``/handx/text_command`` (``std_msgs/String``, reliable, keep last
  :data:`PROMPT_DEPTH` = 1000): a prompt. Every message taken is counted
  (``prompts_received``) and either queued or rejected: it waits in a queue (``queue_size``
  prompts; beyond that it is rejected and counted as ``queue full``) for the worker thread,
  which generates a ``seconds`` clip (seed ``seed`` + the prompt's sequence number) and
  publishes it on ``/handx/motion`` stamped with the time of publication; empty, oversized or
  undeserializable ones are rejected and counted too (``prompts_rejected``). The deep history
  keeps a burst (1,000 prompts in a second) until the executor takes it, where the default
  depth of 10 let DDS overwrite about half of them uncounted. Loss that remains is outside
  the node and counted nowhere here: a burst larger than the depth before the executor gets
  to it, and a publisher's own history (a reliable KEEP_LAST publisher of depth 10 may
  overwrite prompts not yet delivered; publish a burst with a depth as large as the burst, or
  KEEP_ALL). Prompts are small (at most ``max_prompt_chars``), so the depth costs at most a
  few megabytes.
* in ``/handx/observed_hands`` (``geometry_msgs/PoseArray``, sensor-data QoS): frames with
  exactly one hand present (the teleop-style reaction mode). The node keeps the last
  ``reaction_window_s`` of them (a session), and each time the stream has advanced by
  ``reaction_stride_s`` (by the frames' stamps) it generates the other hand's reaction for the
  window (mode ``reaction``; the given hand is fitted to the observed keypoints by
  :func:`~handx_gen.hand.fit_skeleton` and :func:`~handx_gen.hand.inverse_kinematics`). The
  windows lie on one frame grid per session (the model's rate from the session's first
  stamp; each window ends at the newest grid frame not after the newest stamp, the observed
  keypoints interpolated onto it), and each continues the reaction published before it
  (:class:`handx_gen.windows.MotionStream`, the implementation ``handx generate`` uses for
  long clips: the last published frames are the window's known context, the step at the
  join faded out). The node publishes the frames not published before (both hands, the
  given hand's keypoints as observed) on ``/handx/motion``, stamped with the time of the
  clip's last frame: one session's clips follow each other frame by frame, the first covering
  the session so far. At most one reaction waits while the worker is busy (a newer one
  replaces it, counted as ``reactions_skipped``), so the latency stays bounded (about one
  stride plus one generation) and the clips keep up with the stream; a clip after a busy
  worker (e.g. generating a text clip) covers the frames since the last one, up to one
  window (beyond that the reaction starts afresh after a gap). A frame of
  another hand, a gap of more than ``reaction_timeout_s`` in the stamps, or no frame for
  ``reaction_timeout_s`` ends the session and clears the buffer. Frames with both hands are
  plain teleoperation (the retargeting node's) and are ignored here, not rejected. A frame
  whose stamp is not at least :data:`MIN_STAMP_STEP_S` (1 ms: the 1000 fps bound of
  :mod:`handx_gen.rates`) after the previous one is rejected and counted (out of order,
  repeated, or a stream whose stamps crawl, e.g. 1 us a frame, which would otherwise never
  leave the window). The buffer is bounded by frame count as well as by stamp time
  (:meth:`GenerationNode.buffer_frames`: the window at 1000 fps), so a stream whose stamps
  advance slower than real time fills at most that many frames (about 1 MB for the default
  2 s window), and its reactions come by stamp time, i.e. later in real time.
* out ``/handx/motion`` (``trajectory_msgs/MultiDOFJointTrajectory``, reliable, depth 10).
* out ``/handx/hand_markers`` (``visualization_msgs/MarkerArray``): the newest clip played
  once in real time at ``marker_rate_hz``, for RViz.
* out ``/diagnostics``: rejections and ``prompts_received``, ``prompts_done``,
  ``prompts_rejected``,
  ``prompts_failed``, ``reactions_done``, ``reactions_failed``, ``reactions_skipped``,
  ``last_generation_s``, ``last_reaction_latency_s``, ``queue_length``, ``reaction_sessions``,
  ``reaction_frames_buffered``, ``teleop_frames_ignored``, ``clips_unheard`` (clips published
  while no subscriber of ``/handx/motion`` was matched: lost, and warned about).

The models load (and run once, to warm up) when the node starts, before it spins: prompts
that arrive meanwhile wait in the subscription's queue. A bad checkpoint or parameter stops the
node at start with one clear log line and exit status 1. Generation runs on one worker thread
(the generator is not thread-safe); the executor threads only check and enqueue. The worker
takes a waiting reaction and a waiting prompt in turn, so neither starves the other. Torch runs
on ``torch_threads`` threads: on a small shared CPU one thread is many times faster than
torch's default (see ``config/nodes.yaml``).

Parameters (``config/nodes.yaml``, section ``handx_generation``): see :data:`PARAMETERS`.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from std_msgs.msg import String
from trajectory_msgs.msg import MultiDOFJointTrajectory
from visualization_msgs.msg import MarkerArray

from handx_gen.errors import ConfigError, HandxError, MessageError
from handx_gen.hand import fit_skeleton, inverse_kinematics, mirror_axis_angle, mirror_points
from handx_gen.hand.topology import HandSide
from handx_gen.models.masking import MaskMode
from handx_gen.motion import BimanualMotion
from handx_gen.rates import MAX_FPS
from handx_ros import conversions
from handx_ros.nodes.common import Rejections, Unheard, run_node
from handx_ros.nodes.parameters import declare_parameters
from handx_ros.nodes.wire import deserialize

__all__ = [
    'MARKERS_TOPIC',
    'MOTION_TOPIC',
    'NODE_NAME',
    'MIN_STAMP_STEP_S',
    'OBSERVED_TOPIC',
    'PARAMETERS',
    'PROMPT_DEPTH',
    'TEXT_TOPIC',
    'GenerationNode',
    'main',
]

NODE_NAME = 'handx_generation'
TEXT_TOPIC = '/handx/text_command'
OBSERVED_TOPIC = '/handx/observed_hands'
MOTION_TOPIC = '/handx/motion'
MARKERS_TOPIC = '/handx/hand_markers'
PROMPT_DEPTH = 1000  # prompts the subscription's history keeps until the executor takes them
MIN_STAMP_STEP_S = 1.0 / MAX_FPS  # observed frames closer in stamp time are rejected

PARAMETERS: dict[str, Any] = {
    'model': 'diffusion',  # text clips: 'diffusion' or 'ar'
    'seconds': 4.0,  # length of a clip from text
    'seed': 0,  # prompt i uses seed + i; every reaction window uses seed
    'guidance': 0.0,  # classifier-free guidance of text clips; 0: the model's
    'steps': 0,  # DDIM steps of text clips (diffusion); 0: the model's
    'diffusion_checkpoint': '',  # '': the shipped diffusion_small.pt
    'ar_checkpoint': '',  # '': the shipped ar_small.pt
    'device': 'cpu',  # torch device
    'torch_threads': 1,  # torch intra-op threads; 0: torch's default
    'frame_id': 'world',
    'initial_prompt': '',  # generated once at start when not empty
    'queue_size': 2,  # prompts that may wait while one is generated
    'max_prompt_chars': conversions.MAX_PROMPT_CHARS,
    'reaction_model': 'diffusion',
    'reaction_steps': 10,  # DDIM steps of reactions (diffusion); 0: the model's
    'reaction_guidance': 0.0,  # 0: the model's
    'reaction_prompt': 'The {other} hand mirrors the {given} hand.',
    'reaction_window_s': 2.0,  # observed motion each reaction is generated for
    'reaction_stride_s': 0.5,  # a reaction each time the stream advances this much
    'reaction_timeout_s': 1.0,  # no frame for this long (or a stamp gap): session over
    'marker_rate_hz': 30.0,  # RViz markers of the newest clip; 0: none
}


@dataclasses.dataclass(frozen=True)
class _PromptJob:
    text: str
    seed: int


@dataclasses.dataclass(frozen=True, eq=False)
class _ReactionJob:
    side: HandSide  # the observed (given) hand
    session: int  # the session's number (reaction_sessions when it began)
    anchor_s: float  # stamp of the session's first frame: frame 0 of its grid
    stamps_s: np.ndarray  # (N,) observed stamps, increasing
    keypoints: np.ndarray  # (N, 21, 3) observed keypoints of the given hand
    received_s: float  # monotonic arrival time of the newest frame


@dataclasses.dataclass(eq=False)
class _Session:
    """One observed one-hand stream: its recent frames and when the next reaction is due."""

    side: HandSide
    number: int  # reaction_sessions when it began
    anchor_s: float  # stamp of its first frame: frame 0 of its grid
    next_reaction_s: float  # stamp at which the next reaction is due
    last_received_s: float  # monotonic arrival time of the newest frame
    max_frames: int  # the buffer's bound by count (the window at MAX_FPS)
    stamps_s: collections.deque[float] = dataclasses.field(init=False)
    keypoints: collections.deque[np.ndarray] = dataclasses.field(init=False)  # each (21, 3)
    reactions: int = 0

    def __post_init__(self) -> None:
        self.stamps_s = collections.deque(maxlen=self.max_frames)
        self.keypoints = collections.deque(maxlen=self.max_frames)


@dataclasses.dataclass(frozen=True, eq=False)
class _Playback:
    keypoints: np.ndarray  # (T, 2, 21, 3)
    fps: float
    start_s: float  # monotonic


class GenerationNode(Node):
    """Generates clips from prompts and reactions to an observed hand on a worker thread.

    Args:
        node_name: The node name (its section in ``config/nodes.yaml``).
        **kwargs: Passed to :class:`rclpy.node.Node` (e.g. ``parameter_overrides``,
            ``context``).

    Raises:
        HandxError: A bad parameter or checkpoint (logged first, the node destroyed).
    """

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        started = time.perf_counter()
        try:
            self.params = params = declare_parameters(self, PARAMETERS)
            self._check_parameters(params)
            initial = params['initial_prompt'].strip()
            if initial:
                initial = conversions.text_from_msg(String(data=initial),
                                                    max_chars=params['max_prompt_chars'])
        except HandxError as error:
            self.get_logger().fatal(f'cannot start: {error}')
            self.destroy_node()
            raise
        self.frame_id: str = params['frame_id']
        self._lock = threading.Lock()  # counters, session, playback, queue
        self._wake = threading.Condition(self._lock)  # the worker waits for jobs on it
        self._prompts: collections.deque[_PromptJob] = collections.deque()
        self._reaction: _ReactionJob | None = None
        self._prefer_prompt = False
        self._closed = False
        self._prompt_count = 0
        self._session: _Session | None = None
        self._stream: tuple[int, Any] | None = None  # (session, MotionStream): worker's only
        self._playback: _Playback | None = None
        self.prompts_received = self.prompts_done = self.prompts_rejected = 0
        self.prompts_failed = 0
        self.reactions_done = self.reactions_failed = self.reactions_skipped = 0
        self.reaction_sessions = self.teleop_frames_ignored = 0
        self.last_generation_s = self.last_reaction_latency_s = float('nan')

        self.rejections = Rejections(self, extra=self._counters)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._motion_publisher = Unheard(
            self, self.create_publisher(MultiDOFJointTrajectory, MOTION_TOPIC, reliable),
            'the retargeting node')
        self._marker_publisher = self.create_publisher(MarkerArray, MARKERS_TOPIC, reliable)
        # Subscribed before the models load: prompts sent meanwhile wait in the reader's
        # queue until the node spins. Separate groups: checking a huge observed message never
        # delays a prompt, and the session and marker timers run beside both.
        # Both raw and guarded: bytes that do not deserialize are rejected and counted, never
        # raised into the executor (a non-raw subscription deserializes inside the executor,
        # where a failure ends the spin).
        prompts = QoSProfile(depth=PROMPT_DEPTH, reliability=ReliabilityPolicy.RELIABLE,
                             history=HistoryPolicy.KEEP_LAST)
        self.create_subscription(String, TEXT_TOPIC,
                                 self.rejections.guard(TEXT_TOPIC, self._on_text_data),
                                 prompts, callback_group=MutuallyExclusiveCallbackGroup(),
                                 raw=True)
        self.create_subscription(PoseArray, OBSERVED_TOPIC,
                                 self.rejections.guard(OBSERVED_TOPIC, self._on_observed),
                                 qos_profile_sensor_data,
                                 callback_group=MutuallyExclusiveCallbackGroup(), raw=True)
        timers = MutuallyExclusiveCallbackGroup()
        self.create_timer(min(0.1, params['reaction_timeout_s'] / 2.0), self._check_session,
                          callback_group=timers)
        if params['marker_rate_hz'] > 0.0:
            self.create_timer(1.0 / params['marker_rate_hz'], self._play_markers,
                              callback_group=timers)
        try:
            _set_torch_threads(params['torch_threads'])
            self._generator, self._fps = self._load_models(params)
        except HandxError as error:
            self.get_logger().fatal(f'cannot start: {error}')
            self.destroy_node()
            raise
        self._window_frames = int(round(params['reaction_window_s'] * self._fps))
        # The reaction buffer by count: what the window (plus the slack kept by stamp time)
        # can hold at the fastest stamps accepted (MIN_STAMP_STEP_S apart), and one more.
        self.buffer_frames = int(math.ceil(
            (params['reaction_window_s'] + 1.5 / self._fps) / MIN_STAMP_STEP_S)) + 2
        self._stride_frames = int(round(params['reaction_stride_s'] * self._fps))
        self._worker = threading.Thread(target=self._work, name='handx_generation',
                                        daemon=True)
        self._worker.start()
        self.get_logger().info(
            f'ready in {time.perf_counter() - started:.1f} s: text {params["model"]} '
            f'({params["seconds"]:g} s clips), reactions {params["reaction_model"]} '
            f'({params["reaction_window_s"]:g} s window every {params["reaction_stride_s"]:g} '
            f's), torch threads {_torch_threads()}')
        if initial:
            self.submit_prompt(initial)

    # ------------------------------------------------------------------ start

    @staticmethod
    def _check_parameters(params: dict[str, Any]) -> None:
        from handx_gen.generate import ModelKind

        ModelKind.parse(params['model'])
        ModelKind.parse(params['reaction_model'])  # both serve reactions
        positive = ('seconds', 'reaction_window_s', 'reaction_stride_s', 'reaction_timeout_s')
        for name in positive:
            if not params[name] > 0.0:
                raise ConfigError(f'parameter {name!r} must be > 0, got {params[name]!r}')
        at_least = {'queue_size': 1, 'max_prompt_chars': 1, 'seed': 0, 'steps': 0,
                    'reaction_steps': 0, 'torch_threads': 0}
        for name, low in at_least.items():
            if params[name] < low:
                raise ConfigError(f'parameter {name!r} must be >= {low}, got {params[name]!r}')
        for name in ('guidance', 'reaction_guidance', 'marker_rate_hz'):
            if params[name] < 0.0:
                raise ConfigError(f'parameter {name!r} must be >= 0, got {params[name]!r}')
        if params['reaction_stride_s'] > params['reaction_window_s']:
            raise ConfigError(f'reaction_stride_s ({params["reaction_stride_s"]}) must not '
                              f'exceed reaction_window_s ({params["reaction_window_s"]})')
        prompt = params['reaction_prompt']
        if not _reaction_text(prompt, HandSide.LEFT).strip():
            raise ConfigError('parameter reaction_prompt must not be empty')

    def _load_models(self, params: dict[str, Any]) -> tuple[Any, float]:
        """Load the text and reaction models and run each once (a warm-up that also loads the
        text encoder). Returns the generator and the reaction model's frame rate."""
        from handx_gen.generate import Generator, ModelKind

        generator = Generator(diffusion=params['diffusion_checkpoint'] or None,
                              ar=params['ar_checkpoint'] or None, device=params['device'])
        for model in dict.fromkeys((params['model'], params['reaction_model'])):
            loaded = generator.load(model)
            generator.generate('Both hands rest.', model=model, seconds=2.0 / loaded.fps,
                               steps=1 if loaded.kind is ModelKind.DIFFUSION else None)
            self.get_logger().info(f'loaded {model} model {loaded.path} '
                                   f'(step {loaded.step}, {loaded.fps:g} fps)')
        reaction = generator.load(params['reaction_model'])
        fps = reaction.fps
        window = int(round(params['reaction_window_s'] * fps))
        stride = int(round(params['reaction_stride_s'] * fps))
        if stride < 2 or window > reaction.max_frames:
            raise ConfigError(
                f'the reaction window ({params["reaction_window_s"]} s = {window} frames) and '
                f'stride ({params["reaction_stride_s"]} s = {stride} frames) at {fps:g} fps '
                f'must satisfy 2 <= stride and window <= {reaction.max_frames} frames')
        text = generator.load(params['model'])
        if not 2 <= round(params['seconds'] * text.fps) <= text.max_frames:
            raise ConfigError(f'seconds ({params["seconds"]}) must give 2 to '
                              f'{text.max_frames} frames at {text.fps:g} fps')
        return generator, fps

    # ------------------------------------------------------------------ prompts

    def _on_text_data(self, data: bytes) -> None:
        """A serialized prompt (the raw subscription's bytes)."""
        try:
            msg = deserialize(data, String, what='prompt')
        except MessageError as error:
            with self._lock:
                self.prompts_received += 1
                self.prompts_rejected += 1
            self.rejections.reject(TEXT_TOPIC, str(error))
            return
        self._on_text(msg)

    def _on_text(self, msg: String) -> None:
        """A prompt: checked, then queued (or rejected and counted)."""
        with self._lock:
            self.prompts_received += 1
        try:
            text = conversions.text_from_msg(msg, max_chars=self.params['max_prompt_chars'])
        except MessageError as error:
            with self._lock:
                self.prompts_rejected += 1
            self.rejections.reject(TEXT_TOPIC, str(error))
            return
        self.submit_prompt(text)

    def submit_prompt(self, text: str) -> bool:
        """Queue a checked prompt for the worker; ``False`` (rejected and counted) when
        ``queue_size`` prompts already wait."""
        with self._wake:
            full = len(self._prompts) >= self.params['queue_size'] or self._closed
            if full:
                self.prompts_rejected += 1
            else:
                self._prompts.append(_PromptJob(text, self.params['seed'] + self._prompt_count))
                self._prompt_count += 1
                self._wake.notify()
        if full:
            self.rejections.reject(TEXT_TOPIC, f'queue full ({self.params["queue_size"]} '
                                   'prompts waiting)')
        return not full

    def _generate_prompt(self, job: _PromptJob) -> None:
        """Worker thread: one clip from text, published."""
        p = self.params
        start = time.perf_counter()
        motion = self._generator.generate(
            job.text, model=p['model'], seconds=p['seconds'], seed=job.seed,
            guidance=p['guidance'] or None, steps=p['steps'] or None)
        seconds = time.perf_counter() - start
        self._publish(motion, self._now_s())
        with self._lock:
            self.prompts_done += 1
            self.last_generation_s = seconds
        self.get_logger().info(f'generated {motion.num_frames} frames in {seconds:.2f} s '
                               f'(seed {job.seed}): {job.text[:60]!r}')

    # ------------------------------------------------------------------ reactions

    def _on_observed(self, data: bytes) -> None:
        """A serialized observed frame (raw: read in place, a huge one refused by its size)."""
        try:
            frame = conversions.observed_from_cdr(data, frame_id=self.frame_id)
        except MessageError as error:
            self.rejections.reject(OBSERVED_TOPIC, str(error))
            return
        if frame.num_present == 2:
            with self._lock:
                self.teleop_frames_ignored += 1  # plain teleoperation: not ours
            return
        side = HandSide(int(np.flatnonzero(frame.present)[0]))
        timeout = self.params['reaction_timeout_s']
        now = time.monotonic()
        job = None
        with self._wake:
            session = self._session
            if session is not None and (session.side is not side
                                        or abs(frame.stamp_s - session.stamps_s[-1]) > timeout):
                self._end_session('the observed hand changed' if session.side is not side
                                  else 'a gap in the stamps')
                session = None
            step_s = None if session is None else frame.stamp_s - session.stamps_s[-1]
            if step_s is not None and step_s <= 0.0:
                stale = 'stamp not after the previous frame (out of order or repeated)'
            elif step_s is not None and step_s < MIN_STAMP_STEP_S:
                stale = (f'stamp less than {MIN_STAMP_STEP_S * 1e3:g} ms after the previous '
                         f'frame (faster than {MAX_FPS:g} fps by its stamps)')
            else:
                stale = ''
                if session is None:
                    self.reaction_sessions += 1
                    session = self._session = _Session(
                        side, self.reaction_sessions, frame.stamp_s,
                        frame.stamp_s + self.params['reaction_stride_s'], now,
                        self.buffer_frames)
                    self.get_logger().info(f'reaction session {self.reaction_sessions}: the '
                                           f'{side.name.lower()} hand is observed')
                session.stamps_s.append(frame.stamp_s)
                session.keypoints.append(frame.keypoints[side])
                session.last_received_s = now
                keep_s = frame.stamp_s - self.params['reaction_window_s'] - 1.5 / self._fps
                while session.stamps_s[0] < keep_s:
                    session.stamps_s.popleft()
                    session.keypoints.popleft()
                if frame.stamp_s >= session.next_reaction_s - 0.5 / self._fps:
                    session.next_reaction_s = frame.stamp_s + self.params['reaction_stride_s']
                    job = _ReactionJob(side, session.number, session.anchor_s,
                                       np.asarray(session.stamps_s),
                                       np.stack(session.keypoints), now)
                    if self._reaction is not None:
                        self.reactions_skipped += 1  # the worker is behind: newest wins
                    self._reaction = job
                    self._wake.notify()
        if stale:
            self.rejections.reject(OBSERVED_TOPIC, stale)

    def _end_session(self, why: str) -> None:
        """End the observed stream's session and clear its buffer (the lock held)."""
        session = self._session
        if session is None:
            return
        self._session = None
        self.get_logger().info(f'reaction session {self.reaction_sessions} ended ({why}) after '
                               f'{session.reactions} reactions')

    def _check_session(self) -> None:
        """Timer: end the session when no frame came for ``reaction_timeout_s``."""
        with self._lock:
            session = self._session
            if session is not None and \
                    time.monotonic() - session.last_received_s > self.params['reaction_timeout_s']:
                self._end_session('the stream stopped')

    def _generate_reaction(self, job: _ReactionJob) -> None:
        """Worker thread: the other hand's reaction for one window of the session's grid,
        continuing the session's reaction; its frames not published before, published."""
        from handx_gen.windows import WindowSettings

        p = self.params
        start = time.perf_counter()
        fps = self._fps
        # the session's grid: frame n at anchor + n / fps; the window ends at the newest grid
        # frame not after the newest stamp and starts no earlier than the oldest
        newest = int(math.floor((job.stamps_s[-1] - job.anchor_s) * fps + 1e-6))
        oldest = int(math.ceil((job.stamps_s[0] - job.anchor_s) * fps - 1e-6))
        first = max(oldest, newest - self._window_frames + 1)
        if self._stream is None or self._stream[0] != job.session:
            self._stream = (job.session, self._generator.stream(
                _reaction_text(p['reaction_prompt'], job.side), model=p['reaction_model'],
                mode=MaskMode.REACTION, side=job.side, seed=p['seed'],
                guidance=p['reaction_guidance'] or None, steps=p['reaction_steps'] or None,
                window=WindowSettings(window_frames=self._window_frames, hold_frames=0)))
        stream = self._stream[1]
        if newest - first < 1 or (stream.end is not None and newest < stream.end):
            return  # fewer than two grid frames, or none after the last published one
        times_s = job.anchor_s + np.arange(first, newest + 1) / fps  # (T,)
        keypoints = _resample(job.stamps_s, job.keypoints, times_s)  # (T, 21, 3)
        given = _given_motion(keypoints, job.side, fps)
        clip = stream.extend(first, newest + 1, given=given)
        seconds = time.perf_counter() - start
        self._publish(clip, float(times_s[-1]))
        latency = time.monotonic() - job.received_s
        with self._lock:
            self.reactions_done += 1
            self.last_generation_s = seconds
            self.last_reaction_latency_s = latency
            if self._session is not None and self._session.number == job.session:
                self._session.reactions += 1
        self.get_logger().debug(f'reaction of {clip.num_frames} new frames in {seconds:.3f} s, '
                                f'latency {latency:.3f} s')

    # ------------------------------------------------------------------ worker

    def _work(self) -> None:
        """The worker thread: prompts and reactions in turn, until :meth:`close`."""
        _set_torch_threads(self.params['torch_threads'])  # per thread for OpenMP
        while True:
            with self._wake:
                while not self._closed and self._reaction is None and not self._prompts:
                    self._wake.wait()
                if self._closed:
                    return
                take_prompt = bool(self._prompts) and (self._prefer_prompt
                                                       or self._reaction is None)
                job: _PromptJob | _ReactionJob
                if take_prompt:
                    job = self._prompts.popleft()
                else:
                    job, self._reaction = self._reaction, None
                self._prefer_prompt = not take_prompt
            try:
                if isinstance(job, _PromptJob):
                    self._generate_prompt(job)
                else:
                    self._generate_reaction(job)
            except Exception as error:  # noqa: BLE001  the worker must outlive any one job
                self._job_failed(job, error)

    def _job_failed(self, job: _PromptJob | _ReactionJob, error: Exception) -> None:
        if isinstance(job, _PromptJob):
            topic, what = TEXT_TOPIC, 'generation failed'
            with self._lock:
                self.prompts_failed += 1
        else:
            topic, what = OBSERVED_TOPIC, 'reaction failed'
            with self._lock:
                self.reactions_failed += 1
        if isinstance(error, HandxError):
            self.rejections.reject(topic, f'{what}: {error}')
            return
        self.get_logger().error(f'{what} unexpectedly: {error!r}')
        self.rejections.reject(topic, f'{what}: internal error {type(error).__name__}')

    # ------------------------------------------------------------------ output

    def _publish(self, motion: BimanualMotion, stamp_s: float) -> None:
        self._motion_publisher.publish(
            conversions.motion_to_msg(motion, stamp_s=stamp_s, frame_id=self.frame_id))
        with self._lock:
            self._playback = _Playback(motion.keypoints.astype(np.float64), motion.fps,
                                       time.monotonic())

    def _play_markers(self) -> None:
        """Timer: the newest clip's current frame as RViz markers (once through)."""
        with self._lock:
            playback = self._playback
            if playback is None:
                return
            frame = int((time.monotonic() - playback.start_s) * playback.fps)
            if frame >= playback.keypoints.shape[0]:
                self._playback = None
                return
        try:
            message = conversions.hand_markers_msg(playback.keypoints[frame],
                                                   stamp_s=self._now_s(),
                                                   frame_id=self.frame_id)
        except MessageError as error:  # a generated clip out of bounds: say so once
            self.get_logger().warning(f'cannot show the clip as markers: {error}')
            with self._lock:
                self._playback = None
            return
        self._marker_publisher.publish(message)

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # ------------------------------------------------------------------ health

    def _counters(self) -> dict[str, Any]:
        with self._lock:
            session = self._session
            return {
                'prompts_received': self.prompts_received,
                'prompts_done': self.prompts_done,
                'prompts_rejected': self.prompts_rejected,
                'prompts_failed': self.prompts_failed,
                'reactions_done': self.reactions_done,
                'reactions_failed': self.reactions_failed,
                'reactions_skipped': self.reactions_skipped,
                'last_generation_s': self.last_generation_s,
                'last_reaction_latency_s': self.last_reaction_latency_s,
                'queue_length': len(self._prompts),
                'reaction_sessions': self.reaction_sessions,
                'reaction_frames_buffered': 0 if session is None else len(session.stamps_s),
                'teleop_frames_ignored': self.teleop_frames_ignored,
                'clips_unheard': self._motion_publisher.count,
            }

    def close(self, timeout_s: float = 30.0) -> bool:
        """Drop waiting work, stop the worker after its current job, and join it.

        Returns:
            Whether the worker ended within ``timeout_s``.
        """
        with self._wake:
            self._closed = True
            dropped = len(self._prompts)
            self._prompts.clear()
            self._reaction = None
            self._wake.notify_all()
        if dropped:
            self.get_logger().info(f'closing: {dropped} waiting prompts dropped')
        self._worker.join(timeout_s)
        return not self._worker.is_alive()


# ---------------------------------------------------------------------------- helpers


def _reaction_text(template: str, given: HandSide) -> str:
    """The reaction prompt with ``{given}`` and ``{other}`` replaced by hand names."""
    return template.replace('{given}', given.name.lower()).replace(
        '{other}', given.other.name.lower())


def _resample(stamps_s: np.ndarray, keypoints: np.ndarray, times_s: np.ndarray) -> np.ndarray:
    """Observed keypoints at ``times_s`` by linear interpolation between the frames around
    each time (held at the ends).

    Args:
        stamps_s: (N,) increasing stamps, N >= 2.
        keypoints: (N, 21, 3).
        times_s: (T,) times.

    Returns:
        (T, 21, 3); frames at the observed stamps are kept exactly.
    """
    index = np.clip(np.searchsorted(stamps_s, times_s, side='right') - 1, 0, len(stamps_s) - 2)
    weight = (times_s - stamps_s[index]) / (stamps_s[index + 1] - stamps_s[index])  # (T,)
    weight = np.clip(weight, 0.0, 1.0)[:, None, None]
    return (1.0 - weight) * keypoints[index] + weight * keypoints[index + 1]


def _given_motion(keypoints: np.ndarray, side: HandSide, fps: float) -> BimanualMotion:
    """A motion whose ``side`` hand is fitted to observed keypoints (T, 21, 3), for the
    reaction mode. The other hand, which the reaction mode neither reads nor returns, is the
    given hand mirrored through x = 0 (any valid hand would do)."""
    fit = inverse_kinematics(keypoints, fit_skeleton(keypoints, side))
    orient = np.empty((len(keypoints), 2, 3))
    pose = np.empty((len(keypoints), 2) + fit.hand_pose.shape[1:])
    transl = np.empty((len(keypoints), 2, 3))
    points = np.empty((len(keypoints), 2) + keypoints.shape[1:])
    other = side.other
    orient[:, side], orient[:, other] = fit.global_orient, mirror_axis_angle(fit.global_orient)
    pose[:, side], pose[:, other] = fit.hand_pose, mirror_axis_angle(fit.hand_pose)
    transl[:, side], transl[:, other] = fit.transl, mirror_points(fit.transl)
    points[:, side], points[:, other] = keypoints, mirror_points(keypoints)
    return BimanualMotion(fps, orient, pose, transl, points)


def _set_torch_threads(threads: int) -> None:
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def main(args: Sequence[str] | None = None) -> int:
    """``ros2 run handx_ros generation_node``; exit status 1 when it cannot start."""
    return run_node(GenerationNode, args)


if __name__ == '__main__':
    sys.exit(main())
