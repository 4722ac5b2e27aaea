# The borrower pages, in English. Every message is one line, and every id has a hyphen (the
# catalogue test finds the ids the code uses by that shape). Keep the sentences plain and short:
# they are read on a small screen, often by someone worried about their phone.

## Dates and times
format-date = { $day } { $month } { $year }
format-date-time = { $date }, { $time } { $zone }
month-1 = January
month-2 = February
month-3 = March
month-4 = April
month-5 = May
month-6 = June
month-7 = July
month-8 = August
month-9 = September
month-10 = October
month-11 = November
month-12 = December

## Every page
nav-home = Home
nav-check = IMEI check
nav-appeal = Appeal
nav-locks = Which lock is this?
lang-label = Language:
error-internal = Something went wrong on our side. Please try again later.
error-not-found = Nothing was found for this number. Check it and try again.
error-no-phone-with-code = No phone with this IMEI and status code found. Check both numbers on the lock screen and try again.
error-no-status-code = No phone shows this status code now. Check the number on the lock screen, or enter the IMEI instead.
error-no-financed-imei = No financed phone with this IMEI found. Check the number (dial *#06#) and try again.
error-no-appeal = No appeal with this reference found. Check the reference and try again.
error-wait-title = Please wait
error-rate-limited = Too many requests from your connection. Try again in { $seconds } seconds.
error-too-many-proofs = Too many status codes were tried for this phone. Try again in { $seconds } seconds with the code on the lock screen; if this keeps happening, call support on { $support }: they can find the phone by its code.
error-too-many-code-lookups = Too many look-ups by status code right now. Enter the IMEI instead (dial *#06#).

## The home page and the look-up forms
index-title = Financed phones
index-appeals = Appeals
index-appeal-link = Open an appeal
index-appeal-text = if you paid and are still locked, if you own this phone, or if the lock is wrong.
why-title = Why is my phone locked?
why-label = IMEI (dial *#06#) or the status code on the lock screen
why-button = Why is my phone locked?
check-title = Is this phone financed?
check-label = IMEI (dial *#06#)
check-button = Check
follow-label = Appeal reference (AP-…)
follow-button = Follow my appeal

## Why is my phone locked?
state-active = Not locked: payments are up to date.
state-reminder = Not locked: a payment reminder is showing.
state-restricted = Some functions are limited.
state-locked = Locked. Emergency calls still work.
state-released = Released: the phone is yours.
reason-good-standing = Your payments are up to date.
reason-paid-in-full = Paid in full. Thank you.
reason-due-soon = Your payments are up to date. The next installment falls due on { $date }.
reason-overdue = An installment payment is overdue (it was due on { $date }).
reason-overdue-restricted = Some functions are limited because an installment payment is overdue (it was due on { $date }).
reason-overdue-locked = This phone is locked because an installment payment is overdue (it was due on { $date }).
reason-manual-lock = Locked by the financier. Call them to find out why; the lock screen shows their message.
reason-provisional-unlock = Unlocked for now, until { $time }.
reason-provisional-unlock-open = Unlocked for now.
reason-hardship-pause = Payments are paused until { $time }; nothing will be locked meanwhile.
reason-hardship-pause-open = Payments are paused; nothing will be locked meanwhile.
reason-dispute-freeze = A dispute is under review; nothing further will be restricted meanwhile.
reason-released = This phone is released: it is yours.
reason-sim-changed = A new SIM card was put in this phone. Contact the financier so that nothing is limited.
why-as-of = Status on { $time }.
why-amount-due = Amount due now:
why-amount-by-code = To see the amount due, enter the status code shown on the lock screen instead of the IMEI.
why-next-reminder = If nothing is paid, a reminder shows from { $time }.
why-next-restricted = If nothing is paid, some functions are limited from { $time }.
why-next-locked = If nothing is paid, the phone is locked from { $time }.
why-how-to-pay = How to pay:
why-unlocks-fast = The phone unlocks within seconds of a payment that brings you up to date.
why-whom-to-call = Whom to call:
why-platform-support = Platform support:
why-paid-still-locked = Paid and still locked?
why-open-appeal = Open an appeal

## Is this phone financed?
imei-clear = Clear
imei-financed = Financed, in good standing
imei-locked = Financed and locked
imei-released = Released
imei-unknown = Unknown
imei-says-clear = No financier on Lien holds a claim on this phone.
imei-says-financed = This phone is financed by { $financier } and in good standing. Their claim on it remains until it is paid off.
imei-says-locked = This phone is financed and currently restricted or locked by { $financier }. Ask them before buying or repairing it.
imei-says-released = The financier's claim on this phone has ended.
imei-says-released-earlier = This phone was financed; the financier's claim on it has ended.
imei-says-unknown = This is not a valid IMEI, so Lien cannot say. Dial *#06# on the phone to see its IMEI.
imei-released-on = Released on { $date }.
imei-financier = Financier:
imei-other-lock = Locked, but not by a financier?

## Appeals
appeal-title = Open an appeal
appeal-intro = The financier must answer by a deadline. If you paid and they do not answer in time, your phone is unlocked for a while. Nothing gets worse while your appeal is open.
appeal-numbers-hint = Both numbers are on the phone's lock screen. The status code shows that you have the phone; if the phone has just changed its code, use the new one.
appeal-imei-label = IMEI (on the lock screen, or dial *#06#)
appeal-code-label = Status code (8 digits, on the lock screen)
appeal-claim-label = What happened?
appeal-claim-paid = I paid and I am still locked
appeal-claim-owner = I own this phone (bought second-hand)
appeal-claim-wrong-lock = This lock is wrong
appeal-contact-label = Your phone number or e-mail, for the financier to reach you
appeal-if-paid = If you paid
appeal-reference-label = Payment reference (transaction code)
appeal-paid-on-label = Date paid
appeal-amount-label = Amount
appeal-currency-label = Currency (e.g. KES)
appeal-receipt-label = Receipt, or proof of purchase (PDF, JPEG or PNG, at most { $limit })
appeal-statement-label = Anything else we should know
appeal-send = Send the appeal
appeal-opened-title = Your appeal is open
appeal-your-reference = Your reference:
appeal-keep-reference = Keep it: it is the only way to follow your appeal.
appeal-withheld = No provisional unlock at the deadline: { $why }.
appeal-follow = Follow this appeal
appeal-status-title = Your appeal
appeal-reference = Reference:
appeal-status = Status:
appeal-accepted = Accepted
appeal-rejected = Rejected
appeal-open = Open
appeal-due-by = Answer due by: { $time }
appeal-financier-reason = The financier's reason:
appeal-financier = Financier:
progress-accepted = Accepted.
progress-rejected = Rejected.
progress-unlocked = Not answered by the deadline ({ $deadline }): the phone is unlocked until { $until } while the financier reviews it.
progress-unlock-ended = Not answered by the deadline ({ $deadline }); the provisional unlock ended on { $until }. The lock will not get worse while the appeal is open.
progress-waiting-unlock = Waiting for the financier, who must answer by { $deadline }. If they do not, the phone is unlocked for a while from then. Nothing gets worse meanwhile.
progress-waiting-no-unlock = Waiting for the financier, who should answer by { $deadline }. Nothing gets worse meanwhile. This claim does not unlock the phone at the deadline: the amount claimed does not cover what is overdue, or the payment is already recorded.
progress-waiting = Waiting for the financier, who should answer by { $deadline }. Nothing gets worse meanwhile.

## Which lock is this?
locks-title = Which lock is this?
locks-intro = A phone can be locked in several ways. Each looks different, and each can be lifted only by someone different. This site deals with the first one only.
locks-looks = What you see:
locks-who = Who can lift it:
locks-lien-heading = Financing lock (this service)
locks-lien-looks = A full screen says the phone is locked because an installment payment is overdue. It names the financier and their contact, shows the amount due and an 8-digit status code, and still lets you make emergency calls.
locks-lien-who = The financier. Paying what is overdue unlocks the phone within seconds; a factory reset does not remove this lock. Look the phone up on this site by its IMEI or status code, or open an appeal.
locks-frp-heading = Google factory reset protection (FRP)
locks-frp-looks = After a factory reset, the setup screen says the device was reset and asks you to sign in with a Google account that was on the phone before.
locks-frp-who = Only the owner of that Google account, by signing in or by removing the phone from their account. Not the financier, and not this site.
locks-carrier-heading = Carrier lock (SIM or network lock)
locks-carrier-looks = The phone works, but a SIM card from another network is refused: it asks for a "SIM network unlock PIN" or says the SIM is not supported.
locks-carrier-who = The mobile network that sold the phone, usually once its contract is paid. Ask them for an unlock code.
locks-account-heading = Account lock (Google, Samsung or Apple account)
locks-account-looks = The phone asks for an account's password, or shows a "lost" or "locked" message from its owner, set with Find My Device, SmartThings Find or Apple's Find My (Activation Lock).
locks-account-who = The owner of that account. If you bought the phone, ask the seller to remove it from their account; the phone maker's support may help with proof of purchase.
locks-bootloader-heading = Bootloader lock
locks-bootloader-looks = Nothing you would notice: the phone works normally. This lock only stops other system software from being installed. A warning at start-up that the bootloader is unlocked means it has been opened, not locked.
locks-bootloader-who = The owner, through the phone's developer settings ("OEM unlocking"), where the maker allows it. It is not a debt and does not stop you using the phone.
locks-check-imei = If the IMEI check says "Clear" and the phone still shows a lock, it is not a financing lock from this service: ask the seller, the mobile network or the phone maker.

## The borrower's request for a hardship pause.
hardship-title = Ask for a pause in payments
hardship-intro = If you cannot pay for a while (illness, lost work), ask your financier to pause the payments. While a pause lasts nothing on the phone is locked or limited; reminders go on. You need the IMEI and the 8-digit status code the phone's screen shows.
hardship-days-label = How many days of pause you need
hardship-reason-label = What happened (for your financier)
hardship-send = Ask for a pause
hardship-granted = Your payments are paused until { $time }. Nothing will be locked meanwhile.
hardship-waiting = Your request was sent to your financier, who will answer it. Nothing changes on your phone until then.
why-cannot-pay = Cannot pay for a while?
why-ask-pause = Ask for a pause in payments
