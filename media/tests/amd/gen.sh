#!/usr/bin/env bash
# Generate the labelled answering-machine-detection test set: synthetic humans answering
# ("Hello?") and voicemail greetings (several sentences, most ending in a beep), spoken by
# espeak-ng with different voices, speeds and pitches, levelled, band-limited like a phone
# line and mixed with noise by sox. Output: 8 kHz mono 16-bit WAV files and labels.csv.
#
#   gen.sh OUTDIR [SEED] [HUMANS] [MACHINES]
#
# Every choice comes from a small LCG seeded by SEED, and sox runs in repeatable mode (-R),
# so the same arguments give the same files. The test set uses seed 1; tune on another seed
# so that the reported accuracy is measured on audio the thresholds were not fitted to.
#
# labels.csv: file,label (human|machine),beep (0|1),voice,speed,pitch,snr_db (none or dB),
# speech_start_s,speech_end_s (the first greeting; a person may say "Hello?" again later),
# beep_start_s,beep_end_s,text. Times are seconds from the start of the file (the answer).
set -euo pipefail

out=${1:?usage: gen.sh OUTDIR [SEED] [HUMANS] [MACHINES]}
seed=${2:-1}
humans=${3:-120}
machines=${4:-120}
for tool in espeak-ng sox; do
  command -v "$tool" >/dev/null || { echo "gen.sh: $tool is not installed" >&2; exit 2; }
done

mkdir -p "$out"
work=$(mktemp -d "$out/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- deterministic choices ---------------------------------------------------------------
S=$(( seed * 2654435761 + 12345 ))
# rnd N: sets R to a number in [0, N).
rnd() { S=$(( S * 6364136223846793005 + 1442695040888963407 )); R=$(( ((S >> 33) & 0x7FFFFFFF) % $1 )); }
# pick ARRAY: sets P to one element of the named array.
pick() { local -n a=$1; rnd ${#a[@]}; P=${a[$R]}; }
# ms LO HI: sets M to milliseconds in [LO, HI].
ms() { rnd $(( $2 - $1 + 1 )); M=$(( $1 + R )); }
sec() { printf '%d.%03d' $(( $1 / 1000 )) $(( $1 % 1000 )); }

voices=(en-us en-us+f3 en-us+m3 en-gb en-gb+f2 en-gb+m7 en+f3 en+f5 en-gb-x-rp+m5
        en-gb-scotland+f4 en-029 en-029+f1 en-us-nyc+m2 en-us+klatt2 en-gb-x-gbclan+f2
        en-us+f4 en-gb-x-gbcwmd+m1)

# People answering: mostly one or two words, some say who they are or ask who calls.
human_short=("Hello?" "Hello?" "Hello?" "Hello." "Yes?" "Yeah?" "Hi." "Hey." "Hello?"
             "Yep?" "Speaking." "Hallo?" "Yes, hello?" "Hi there." "Good morning."
             "Uh, hello?" "Mm, yes?")
human_long=("Hello, who is this?" "Hi, this is Mark." "Hello, Sarah speaking."
            "Hi, who's calling?" "Hello, this is Anna." "Yes, can I help you?"
            "Hello? Who's there?" "Good afternoon." "Hi, it's Dave.")
# Voicemail greetings: personal and carrier ones, 3 to 12 seconds.
machine_texts=(
  "Hi, you've reached Sarah. I can't take your call right now, please leave a message after the tone and I'll get back to you."
  "The person you are calling is not available. Please leave a message after the tone."
  "Hello, this is John Smith. I'm away from my desk at the moment. Leave your name, number and a short message, and I will call you back as soon as I can."
  "You have reached the voicemail box of five five five, one two three four. Please record your message after the tone. When you are finished, hang up, or press pound for more options."
  "Hey, it's Mike. Leave a message."
  "Thank you for calling Acme Plumbing. Our office is closed. Our opening hours are eight to six, Monday to Friday. Please leave a message and we will return your call."
  "Hi, this is Jenny. Sorry I missed you. Leave a message at the beep."
  "The number you have dialed is not available right now. Please leave your message after the tone."
  "Hello, you have reached the Miller family. We can't come to the phone right now, but if you leave your name and number, we'll call you back."
  "Please leave a message after the beep."
  "Hi, you've reached Tom and Lisa. We're not home. Leave us a message and we'll get back to you soon. Thanks!"
  "This is the voicemail of Doctor Patel. If this is an emergency, please hang up and dial nine one one. Otherwise, leave a message and my assistant will call you back."
  "You've reached the desk of Robert Chen at Northwind Traders. I'm either on another call or away from my desk. Please leave a message."
  "Hello. I'm not available to take your call. Please leave a message."
  "Hi! You've reached Amy. I'm probably out having fun. You know what to do."
  "The subscriber you are trying to reach cannot take your call. Please leave a message after the tone. To page this person, press five."
  "Hey there, this is Chris. Can't talk right now. Send me a text or leave a message, and I'll call you right back."
  "Good day. You have reached the offices of Baker and Associates. All of our staff are currently assisting other clients. Please leave your name, telephone number and the reason for your call."
  "Hello, you've reached Maria. I'm out of the office until Monday. For urgent matters, please contact my colleague Peter on extension two four one."
  "Welcome to the voice messaging system. The mailbox you have reached is full... no wait, it is not full. Please speak after the tone."
  "Hi, this is Dan's phone. I can't answer. Leave a message."
  "Your call has been forwarded to an automatic voice message system. Seven seven zero, four one two, nine nine eight one, is not available. At the tone, please record your message."
  "Hi, you have reached the Johnsons. Nobody is home right now, so please leave a message after the beep, and have a wonderful day."
  "Hello, this is Karen from accounts. I'm in meetings all day. Please leave a detailed message, including your invoice number, and I'll reply by email."
)

# --- one job per sample ------------------------------------------------------------------
# A long noise bed cut at a different offset per sample: sox -R gives repeatable noise, and
# the offsets keep the samples from sharing one noise sequence.
sox -R -n -r 8000 -c 1 -b 16 "$work/white.wav" synth 50 whitenoise
sox -R -n -r 8000 -c 1 -b 16 "$work/pink.wav" synth 50 pinknoise

snrs=(none none 30 25 20 15 12)
noises=(white white pink)
printf 'file,label,beep,voice,speed,pitch,snr_db,speech_start_s,speech_end_s,beep_start_s,beep_end_s,text\n' >"$work/labels.head"

job() { # FILE KIND VOICE SPEED PITCH GAIN SNR NOISE NOFF LEAD TEXT  + machine: BEEP GAP BFREQ BDUR BGAIN TAIL; human: REPEAT_AT TAIL
  local f=$1 kind=$2 voice=$3 speed=$4 pitch=$5 gain=$6 snr=$7 noise=$8 noff=$9 lead=${10} text=${11}
  shift 11
  local w="$work/$f"
  # Cut espeak's own leading and trailing silence (so that the labels mark the speech), then
  # a phone line's band and the sample's level.
  local speech="silence 1 0.005 0.3% reverse silence 1 0.005 0.3% reverse gain -6 sinc 250-3400 norm -3 gain -$gain"
  # The noise level comes from the speech's own RMS level, so that snr_db in labels.csv is
  # the real speech-to-noise ratio; the beds' RMS is about -4.8 dBFS (white), -17 (pink).
  local nbase; [ "$noise" = white ] && nbase=-4.8 || nbase=-17
  local snr_db; [ "$snr" = none ] && snr_db=0 || snr_db=$snr
  {
    echo "set -euo pipefail"
    # Repeatable mode: sox seeds its dither (and noise) with a fixed number.
    echo 'sox() { command sox -R "$@"; }'
    printf 'espeak-ng -v %q -s %d -p %d -w %q %q\n' "$voice" "$speed" "$pitch" "$w.raw.wav" "$text"
    printf 'sox %q -r 8000 -c 1 -b 16 %q %s\n' "$w.raw.wav" "$w.sp.wav" "$speech"
    # The speech's length (for the labels) and the noise gain, from one pass of sox stat.
    printf 'read -r sp ng < <(sox %q -n stat 2>&1 | awk -v s=%s -v b=%s %q)\n' "$w.sp.wav" "$snr_db" "$nbase" \
      '/^Length/ {l = $3} /^RMS +amplitude/ {r = $3} END {printf "%s %.2f\n", l, 20 * log(r) / log(10) - s - b}'
    if [ "$kind" = machine ]; then
      local beep=$1 gap=$2 bfreq=$3 bdur=$4 bgain=$5 tail=$6
      if [ "$beep" = 1 ]; then
        printf 'sox -n -r 8000 -c 1 -b 16 %q synth %s sine %d fade t 0.01 0 0.01 gain -%s pad %s %s\n' \
          "$w.beep.wav" "$bdur" "$bfreq" "$bgain" "$gap" "$tail"
        printf 'sox %q %q %q pad %s\n' "$w.sp.wav" "$w.beep.wav" "$w.clean.wav" "$lead"
      else
        printf 'sox %q %q pad %s %s\n' "$w.sp.wav" "$w.clean.wav" "$lead" "$tail"
      fi
    else
      local repeat_at=$1 tail=$2
      if [ "$repeat_at" != 0 ]; then
        # Nobody answered the "Hello?": they ask again.
        printf 'espeak-ng -v %q -s %d -p %d -w %q %q\n' "$voice" "$speed" "$pitch" "$w.raw2.wav" "Hello?"
        printf 'sox %q -r 8000 -c 1 -b 16 %q %s pad %s %s\n' "$w.raw2.wav" "$w.sp2.wav" "$speech" "$repeat_at" "$tail"
        printf 'sox %q %q %q pad %s\n' "$w.sp.wav" "$w.sp2.wav" "$w.clean.wav" "$lead"
      else
        printf 'sox %q %q pad %s %s\n' "$w.sp.wav" "$w.clean.wav" "$lead" "$tail"
      fi
    fi
    if [ "$snr" = none ]; then
      printf 'mv %q %q\n' "$w.clean.wav" "$out/$f.wav.part"
    else
      printf 'len=$(soxi -D %q)\n' "$w.clean.wav"
      printf 'sox -m -v 1 %q -v 1 "|sox -R %q -p trim %s $len gain $ng" -t wav %q\n' "$w.clean.wav" "$work/$noise.wav" "$noff" "$out/$f.wav.part"
    fi
    # The speech length is only known once espeak has spoken: the job writes it for its row.
    printf 'echo "$sp" >%q\n' "$w.splen"
    printf 'mv %q %q\n' "$out/$f.wav.part" "$out/$f.wav"
  } >"$w.job"
}

rows=()
for ((i = 0; i < humans; i++)); do
  f=$(printf 'human-%03d' "$i")
  pick voices; voice=$P
  ms 120 200; speed=$M
  ms 30 70; pitch=$M
  ms 0 12; gain=$M
  pick snrs; snr=$P
  pick noises; noise=$P
  ms 0 30000; noff=$(sec "$M")
  rnd 10
  if ((R < 6)); then pick human_short; else pick human_long; fi
  text=$P
  # Most people speak within half a second of picking up; some wait up to 1.5 s.
  rnd 4
  if ((R < 3)); then ms 50 500; else ms 500 1500; fi
  lead=$M
  rnd 10
  if ((R < 3)); then ms 1500 2500; repeat=$(sec "$M"); ms 1500 2000; else repeat=0; ms 3000 3500; fi
  tail=$(sec "$M")
  job "$f" human "$voice" "$speed" "$pitch" "$gain" "$snr" "$noise" "$noff" "$(sec "$lead")" "$text" "$repeat" "$tail"
  rows+=("$f,human,0,$voice,$speed,$pitch,$snr,$(sec "$lead"),LEN,,,\"$text\"")
done
for ((i = 0; i < machines; i++)); do
  f=$(printf 'machine-%03d' "$i")
  pick voices; voice=$P
  ms 130 190; speed=$M
  ms 30 70; pitch=$M
  ms 0 12; gain=$M
  pick snrs; snr=$P
  pick noises; noise=$P
  ms 0 30000; noff=$(sec "$M")
  pick machine_texts; text=$P
  ms 50 1000; lead=$M
  rnd 100; beep=$(( R < 85 ? 1 : 0 ))
  ms 200 800; gap=$M
  ms 800 1400; bfreq=$M
  ms 300 1000; bdur=$M
  ms 3 15; bgain=$M
  ms 2000 3000; tail=$M
  job "$f" machine "$voice" "$speed" "$pitch" "$gain" "$snr" "$noise" "$noff" "$(sec "$lead")" "$text" \
    "$beep" "$(sec "$gap")" "$bfreq" "$(sec "$bdur")" "$bgain" "$(sec "$tail")"
  rows+=("$f,machine,$beep,$voice,$speed,$pitch,$snr,$(sec "$lead"),LEN,$gap,$bdur,\"$text\"")
done

ls "$work"/*.job | xargs -P "$(nproc)" -n 1 bash

{
  cat "$work/labels.head"
  for row in "${rows[@]}"; do
    f=${row%%,*}
    IFS=, read -r _ _ beep _ _ _ _ lead _ gap bdur _ <<<"$row"
    sp=$(cat "$work/$f.splen")
    end=$(awk -v a="$lead" -v b="$sp" 'BEGIN{printf "%.3f", a + b}')
    if [ "$beep" = 1 ]; then
      bs=$(awk -v e="$end" -v g="$gap" 'BEGIN{printf "%.3f", e + g / 1000}')
      be=$(awk -v s="$bs" -v d="$bdur" 'BEGIN{printf "%.3f", s + d / 1000}')
    else
      bs=""; be=""
    fi
    IFS=, read -r c1 c2 c3 c4 c5 c6 c7 c8 _ _ _ rest <<<"$row"
    echo "$c1,$c2,$c3,$c4,$c5,$c6,$c7,$c8,$end,$bs,$be,$rest"
  done
} >"$out/labels.csv.part"
mv "$out/labels.csv.part" "$out/labels.csv"
echo "gen.sh: $humans humans and $machines machines in $out" >&2
