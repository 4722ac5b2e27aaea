# Kurasa za mkopaji, kwa Kiswahili. Kila ujumbe uko kwenye mstari mmoja, na kila kitambulisho
# kina kistari (jaribio la katalogi linavitafuta kwa umbo hilo). Maneno rahisi na mafupi.

## Tarehe na saa
format-date = { $day } { $month } { $year }
format-date-time = { $date }, saa { $time } { $zone }
month-1 = Januari
month-2 = Februari
month-3 = Machi
month-4 = Aprili
month-5 = Mei
month-6 = Juni
month-7 = Julai
month-8 = Agosti
month-9 = Septemba
month-10 = Oktoba
month-11 = Novemba
month-12 = Desemba

## Kila ukurasa
nav-home = Mwanzo
nav-check = Kuangalia IMEI
nav-appeal = Rufaa
nav-locks = Ni kufuli gani?
lang-label = Lugha:
error-internal = Kuna hitilafu upande wetu. Tafadhali jaribu tena baadaye.
error-not-found = Hakuna kilichopatikana kwa namba hii. Iangalie na ujaribu tena.
error-no-phone-with-code = Hakuna simu yenye IMEI hii na namba hii ya hali. Angalia namba zote mbili kwenye skrini ya kufuli na ujaribu tena.
error-no-status-code = Hakuna simu inayoonyesha namba hii ya hali sasa. Angalia namba kwenye skrini ya kufuli, au weka IMEI badala yake.
error-no-financed-imei = Hakuna simu ya mkopo yenye IMEI hii. Angalia namba (piga *#06#) na ujaribu tena.
error-no-appeal = Hakuna rufaa yenye namba hii. Angalia namba ya rufaa na ujaribu tena.
error-wait-title = Tafadhali subiri
error-rate-limited = Maombi mengi mno kutoka kwenye muunganisho wako. Jaribu tena baada ya sekunde { $seconds }.
error-too-many-proofs = Namba nyingi mno za hali zimejaribiwa kwa simu hii. Jaribu tena baada ya sekunde { $seconds } ukitumia namba iliyo kwenye skrini ya kufuli; hali hii ikiendelea, piga huduma kwa wateja kwa { $support }: wanaweza kuipata simu kwa namba yake.
error-too-many-code-lookups = Utafutaji mwingi mno kwa namba ya hali kwa sasa. Weka IMEI badala yake (piga *#06#).

## Ukurasa wa mwanzo na fomu za kutafuta
index-title = Simu za mkopo
index-appeals = Rufaa
index-appeal-link = Fungua rufaa
index-appeal-text = kama ulilipa na simu bado imefungwa, kama simu hii ni yako, au kama kufungwa huku si sahihi.
why-title = Kwa nini simu yangu imefungwa?
why-label = IMEI (piga *#06#) au namba ya hali iliyo kwenye skrini ya kufuli
why-button = Kwa nini simu yangu imefungwa?
check-title = Je, simu hii iko kwenye mkopo?
check-label = IMEI (piga *#06#)
check-button = Angalia
follow-label = Namba ya rufaa (AP-…)
follow-button = Fuatilia rufaa yangu

## Kwa nini simu yangu imefungwa?
state-active = Haijafungwa: hakuna malipo yaliyochelewa.
state-reminder = Haijafungwa: ukumbusho wa malipo unaonyeshwa.
state-restricted = Baadhi ya huduma zimezuiliwa.
state-locked = Imefungwa. Simu za dharura bado zinapigika.
state-released = Imeachiliwa: simu ni yako.
reason-good-standing = Hakuna malipo yako yaliyochelewa.
reason-paid-in-full = Umelipa yote. Asante.
reason-due-soon = Malipo yako yako sawa. Awamu inayofuata inadaiwa tarehe { $date }.
reason-overdue = Malipo ya awamu yamechelewa (yalitakiwa tarehe { $date }).
reason-overdue-restricted = Baadhi ya huduma zimezuiliwa kwa sababu malipo ya awamu yamechelewa (yalitakiwa tarehe { $date }).
reason-overdue-locked = Simu hii imefungwa kwa sababu malipo ya awamu yamechelewa (yalitakiwa tarehe { $date }).
reason-manual-lock = Imefungwa na mkopeshaji. Wapigie ili ujue sababu; skrini ya kufuli inaonyesha ujumbe wao.
reason-provisional-unlock = Imefunguliwa kwa muda, hadi { $time }.
reason-provisional-unlock-open = Imefunguliwa kwa muda.
reason-hardship-pause = Malipo yamesimamishwa hadi { $time }; hakuna kitakachofungwa katika muda huo.
reason-hardship-pause-open = Malipo yamesimamishwa; hakuna kitakachofungwa katika muda huo.
reason-dispute-freeze = Malalamiko yanachunguzwa; hakuna kitakachozuiliwa zaidi katika muda huo.
reason-released = Simu hii imeachiliwa: ni yako.
reason-sim-changed = Kadi mpya ya SIM imewekwa kwenye simu hii. Wasiliana na mkopeshaji ili hakuna kitu kizuiliwe.
why-as-of = Hali ilivyo tarehe { $time }.
why-amount-due = Kiasi cha kulipa sasa:
why-amount-by-code = Ili kuona kiasi cha kulipa, weka namba ya hali iliyo kwenye skrini ya kufuli badala ya IMEI.
why-next-reminder = Usipolipa, ukumbusho utaonyeshwa kuanzia { $time }.
why-next-restricted = Usipolipa, baadhi ya huduma zitazuiliwa kuanzia { $time }.
why-next-locked = Usipolipa, simu itafungwa kuanzia { $time }.
why-how-to-pay = Jinsi ya kulipa:
why-unlocks-fast = Simu inafunguka ndani ya sekunde chache baada ya malipo yanayolipa yote yaliyochelewa.
why-whom-to-call = Wasiliana na:
why-platform-support = Msaada wa mfumo:
why-paid-still-locked = Umelipa na simu bado imefungwa?
why-open-appeal = Fungua rufaa

## Je, simu hii iko kwenye mkopo?
imei-clear = Haina mkopo
imei-financed = Iko kwenye mkopo, bila malipo yaliyochelewa
imei-locked = Iko kwenye mkopo na imefungwa
imei-released = Imeachiliwa
imei-unknown = Haijulikani
imei-says-clear = Hakuna mkopeshaji kwenye Lien anayedai simu hii.
imei-says-financed = Simu hii iko kwenye mkopo wa { $financier } na hakuna malipo yaliyochelewa. Wanaendelea kuidai hadi ilipwe yote.
imei-says-locked = Simu hii iko kwenye mkopo, na kwa sasa { $financier } ameizuia au kuifunga. Waulize kabla ya kuinunua au kuitengeneza.
imei-says-released = Mkopeshaji hadai tena simu hii.
imei-says-released-earlier = Simu hii ilikuwa kwenye mkopo; mkopeshaji hadai tena simu hii.
imei-says-unknown = Hii si IMEI sahihi, kwa hiyo Lien haiwezi kusema. Piga *#06# kwenye simu ili kuona IMEI yake.
imei-released-on = Iliachiliwa tarehe { $date }.
imei-financier = Mkopeshaji:
imei-other-lock = Imefungwa, lakini si na mkopeshaji?

## Rufaa
appeal-title = Fungua rufaa
appeal-intro = Mkopeshaji lazima ajibu kabla ya muda fulani. Kama ulilipa na hajajibu kwa wakati, simu yako inafunguliwa kwa muda. Hakuna kinachozidi kuwa kibaya wakati rufaa yako iko wazi.
appeal-numbers-hint = Namba zote mbili ziko kwenye skrini ya kufuli ya simu. Namba ya hali inaonyesha kwamba simu iko mikononi mwako; kama simu imebadilisha namba yake sasa hivi, tumia mpya.
appeal-imei-label = IMEI (kwenye skrini ya kufuli, au piga *#06#)
appeal-code-label = Namba ya hali (tarakimu 8, kwenye skrini ya kufuli)
appeal-claim-label = Nini kilitokea?
appeal-claim-paid = Nililipa na simu bado imefungwa
appeal-claim-owner = Simu hii ni yangu (niliinunua kwa mtu mwingine)
appeal-claim-wrong-lock = Kufungwa huku si sahihi
appeal-contact-label = Namba yako ya simu au barua pepe, ili mkopeshaji akupate
appeal-if-paid = Kama ulilipa
appeal-reference-label = Namba ya muamala (kumbukumbu ya malipo)
appeal-paid-on-label = Tarehe ya malipo
appeal-amount-label = Kiasi
appeal-currency-label = Sarafu (mfano KES)
appeal-receipt-label = Risiti, au ushahidi wa ununuzi (PDF, JPEG au PNG, isizidi { $limit })
appeal-statement-label = Jambo lingine lolote tunalopaswa kujua
appeal-send = Tuma rufaa
appeal-opened-title = Rufaa yako imefunguliwa
appeal-your-reference = Namba yako ya rufaa:
appeal-keep-reference = Iweke: ndiyo njia pekee ya kufuatilia rufaa yako.
appeal-withheld = Simu haitafunguliwa kwa muda mwisho wa muda wa kujibu: { $why }.
appeal-follow = Fuatilia rufaa hii
appeal-status-title = Rufaa yako
appeal-reference = Namba ya rufaa:
appeal-status = Hali:
appeal-accepted = Imekubaliwa
appeal-rejected = Imekataliwa
appeal-open = Iko wazi
appeal-due-by = Jibu linatakiwa kabla ya: { $time }
appeal-financier-reason = Sababu ya mkopeshaji:
appeal-financier = Mkopeshaji:
progress-accepted = Imekubaliwa.
progress-rejected = Imekataliwa.
progress-unlocked = Haikujibiwa kwa wakati ({ $deadline }): simu imefunguliwa hadi { $until } wakati mkopeshaji anaichunguza.
progress-unlock-ended = Haikujibiwa kwa wakati ({ $deadline }); kufunguliwa kwa muda kuliisha { $until }. Kufungwa hakutazidi wakati rufaa iko wazi.
progress-waiting-unlock = Tunamsubiri mkopeshaji, ambaye lazima ajibu kabla ya { $deadline }. Asipojibu, simu itafunguliwa kwa muda kuanzia hapo. Hakuna kinachozidi kuwa kibaya kwa sasa.
progress-waiting-no-unlock = Tunamsubiri mkopeshaji, ambaye anapaswa kujibu kabla ya { $deadline }. Hakuna kinachozidi kuwa kibaya kwa sasa. Dai hili halitafungua simu muda ukiisha: kiasi ulichotaja hakilipi yote yaliyochelewa, au malipo hayo tayari yamerekodiwa.
progress-waiting = Tunamsubiri mkopeshaji, ambaye anapaswa kujibu kabla ya { $deadline }. Hakuna kinachozidi kuwa kibaya kwa sasa.

## Ni kufuli gani?
locks-title = Ni kufuli gani?
locks-intro = Simu inaweza kufungwa kwa njia kadhaa. Kila moja inaonekana tofauti, na kila moja inaweza kuondolewa na mtu tofauti. Tovuti hii inahusu ya kwanza tu.
locks-looks = Unachokiona:
locks-who = Nani anaweza kuiondoa:
locks-lien-heading = Kufuli ya mkopo (huduma hii)
locks-lien-looks = Skrini nzima inasema simu imefungwa kwa sababu malipo ya awamu yamechelewa. Inamtaja mkopeshaji na namba yake, inaonyesha kiasi cha kulipa na namba ya hali ya tarakimu 8, na bado unaweza kupiga simu za dharura.
locks-lien-who = Mkopeshaji. Ukilipa yaliyochelewa, simu inafunguka ndani ya sekunde chache; kurejesha simu kwenye mipangilio ya kiwandani hakuondoi kufuli hii. Itafute simu kwenye tovuti hii kwa IMEI au namba ya hali, au fungua rufaa.
locks-frp-heading = Ulinzi wa Google baada ya kurejesha mipangilio ya kiwandani (FRP)
locks-frp-looks = Baada ya kurejesha mipangilio ya kiwandani, skrini ya kuanzisha simu inasema simu ilirejeshwa na inakuomba uingie kwa akaunti ya Google iliyokuwa kwenye simu hapo awali.
locks-frp-who = Mwenye akaunti hiyo ya Google peke yake, kwa kuingia au kwa kuiondoa simu kwenye akaunti yake. Si mkopeshaji, na si tovuti hii.
locks-carrier-heading = Kufuli ya mtandao (SIM)
locks-carrier-looks = Simu inafanya kazi, lakini laini ya mtandao mwingine inakataliwa: inaomba "SIM network unlock PIN" au inasema laini haikubaliki.
locks-carrier-who = Kampuni ya simu iliyouza simu, kwa kawaida baada ya mkataba wake kulipwa. Waombe namba ya kufungua.
locks-account-heading = Kufuli ya akaunti (Google, Samsung au Apple)
locks-account-looks = Simu inaomba nenosiri la akaunti, au inaonyesha ujumbe wa mwenye simu kwamba "imepotea" au "imefungwa", uliowekwa kwa Find My Device, SmartThings Find au Find My ya Apple (Activation Lock).
locks-account-who = Mwenye akaunti hiyo. Kama uliinunua simu, mwombe muuzaji aiondoe kwenye akaunti yake; huduma kwa wateja ya mtengenezaji wa simu inaweza kusaidia ukiwa na ushahidi wa ununuzi.
locks-bootloader-heading = Kufuli ya bootloader
locks-bootloader-looks = Hakuna utakachogundua: simu inafanya kazi kama kawaida. Kufuli hii inazuia tu kuweka programu nyingine ya mfumo. Onyo wakati simu inawaka kwamba bootloader iko wazi linamaanisha imefunguliwa, si imefungwa.
locks-bootloader-who = Mwenye simu, kupitia mipangilio ya wasanidi programu ("OEM unlocking"), pale mtengenezaji anaporuhusu. Si deni, na haikuzuii kutumia simu.
locks-check-imei = Kama kuangalia IMEI kunasema "Haina mkopo" na simu bado inaonyesha kufuli, si kufuli ya mkopo ya huduma hii: uliza muuzaji, kampuni ya simu au mtengenezaji wa simu.

## Ombi la mkopaji la kusitisha malipo kwa sababu ya shida.
hardship-title = Omba kusitishwa kwa malipo
hardship-intro = Ikiwa huwezi kulipa kwa muda (ugonjwa, kupoteza kazi), muombe mkopeshaji wako asitishe malipo. Wakati malipo yamesitishwa hakuna kitu kwenye simu kitakachofungwa au kuzuiliwa; vikumbusho vinaendelea. Unahitaji IMEI na msimbo wa hali wa tarakimu 8 unaoonyeshwa kwenye skrini ya simu.
hardship-days-label = Unahitaji siku ngapi za kusitisha
hardship-reason-label = Nini kilitokea (kwa mkopeshaji wako)
hardship-send = Omba kusitishwa
hardship-granted = Malipo yako yamesitishwa hadi { $time }. Hakuna kitakachofungwa kwa sasa.
hardship-waiting = Ombi lako limetumwa kwa mkopeshaji wako, atakayelijibu. Hakuna kinachobadilika kwenye simu yako hadi wakati huo.
why-cannot-pay = Huwezi kulipa kwa muda?
why-ask-pause = Omba kusitishwa kwa malipo
